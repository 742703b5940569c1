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
    assert Repository(engine).login_failures_since("127.0.0.1", T0) == 4
