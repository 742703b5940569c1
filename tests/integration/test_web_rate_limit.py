"""The login rate limit lives in the metastore, so two webservers enforce one limit."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from haflow.metastore.repository import Repository
from tests.integration.web_fixtures import PASSWORD, T0, csrf_of, make_web, web_settings

pytestmark = pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)


def _try(web, username: str, password: str) -> int:  # type: ignore[no-untyped-def]
    c = web.app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    resp = c.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return int(resp.status_code)


def test_failed_logins_on_two_webservers_share_one_limit(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    settings = web_settings(tmp_path, db_url, webserver__login_rate_limit="4")
    clock = lambda: T0  # noqa: E731
    one, two = make_web(settings, engine, clock), make_web(settings, engine, clock)
    assert [_try(one, "admin", "bad-1"), _try(two, "admin", "bad-2")] == [401, 401]
    assert [_try(one, "nobody", "bad-3"), _try(two, "admin", "bad-4")] == [401, 401]
    # the limit is reached: even the right password is refused, on either webserver
    assert _try(one, "admin", PASSWORD) == 429
    assert _try(two, "admin", PASSWORD) == 429
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    resp = two.app.test_client().get("/api/v1/me", headers={"Authorization": f"Basic {basic}"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "60"
    # a minute later the window has passed
    later = make_web(settings, engine, lambda: T0.replace(minute=2))
    assert _try(later, "admin", PASSWORD) == 302
    assert Repository(engine).users.login_failures_since("127.0.0.1", T0) == 4


def test_simultaneous_wrong_logins_are_checked_no_more_than_the_limit(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """15 wrong logins at once against a limit of 10: each attempt is counted before its
    password is checked, so at most 10 checks happen; the rest are refused (429)."""
    import threading

    from haflow.web import auth
    from haflow.web.credentials import check_password as real

    settings = web_settings(tmp_path, db_url, webserver__login_rate_limit="10")
    web = make_web(settings, engine, lambda: T0)
    checks: list[int] = []

    def counting(stored: str, password: str) -> bool:
        checks.append(1)
        return real(stored, password)

    monkeypatch.setattr(auth, "check_password", counting)
    basic = base64.b64encode(b"admin:wrong-password").decode()
    start = threading.Barrier(15)
    codes: list[int] = []

    def attempt() -> None:
        c = web.app.test_client()
        start.wait()
        resp = c.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"})
        codes.append(resp.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [401] * len(checks) + [429] * (15 - len(checks))
    assert len(checks) <= 10


def test_one_user_is_limited_from_many_addresses(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A per-user limit beside the per-address one: guessing one account from many addresses
    is stopped too (and one noisy address behind a NAT does not lock out the others' users)."""
    settings = web_settings(tmp_path, db_url, webserver__login_rate_limit="3")
    web = make_web(settings, engine, lambda: T0)
    c = web.app.test_client()
    for i in range(3):
        env = {"REMOTE_ADDR": f"10.0.0.{i + 1}"}
        token = csrf_of(c.get("/login", environ_base=env).get_data(as_text=True))
        data = {"username": "admin", "password": "bad", "csrf_token": token}
        assert c.post("/login", data=data, environ_base=env).status_code == 401
    env = {"REMOTE_ADDR": "10.0.0.9"}
    token = csrf_of(c.get("/login", environ_base=env).get_data(as_text=True))
    data = {"username": "admin", "password": PASSWORD, "csrf_token": token}
    assert c.post("/login", data=data, environ_base=env).status_code == 429
