"""Who may do what: anonymous requests, roles, CSRF, the login rate limit, cookies, secrets."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from haflow.core.clock import utcnow
from haflow.errors import ConfigError
from haflow.web import create_app
from haflow.web.auth import PUBLIC_ENDPOINTS
from tests.integration.web_fixtures import (
    PASSWORD,
    T0,
    Web,
    csrf_of,
    make_web,
    web_settings,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

VALUES = {
    "dag_id": "d",
    "run_id": "r1",
    "dag_run_id": "r1",
    "task_id": "extract",
    "attempt": 1,
    "pool_name": "default_pool",
    "name": "default_pool",
    "backfill_id": 1,
    "variable_key": "v",
    "key": "v",
    "connection_id": "c",
    "conn_id": "c",
    "version": "current",
    "event_log_id": 1,
    "xcom_key": "return_value",
    "file_token": "d",
}


def _routes(w: Web) -> list[tuple[str, str, str]]:
    out = []
    for rule in w.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<int:{name}>", str(VALUES[name])).replace(
                f"<{name}>", str(VALUES[name])
            )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, path))
    return out


def test_every_route_but_the_public_ones_refuses_an_anonymous_request(web_app: Web) -> None:
    client = web_app.app.test_client()
    routes = _routes(web_app)
    assert len(routes) > 20
    checked = 0
    for endpoint, method, path in routes:
        resp = client.open(path, method=method)
        if endpoint in PUBLIC_ENDPOINTS:
            continue
        checked += 1
        if path.startswith("/api/") or path == "/metrics":
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.get_json()["detail"]
            # never a Basic challenge: a browser would cache the credentials for the site
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert resp.status_code == 302, (method, path, resp.status_code)
            assert resp.headers["Location"].startswith("/login")
    assert checked > 20
    # and the public ones answer without a login
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/login").status_code == 200


def test_a_bad_token_or_password_is_refused(web_app: Web) -> None:
    c = web_app.app.test_client()
    assert c.get("/api/v1/dags", headers={"Authorization": "Bearer hft_nope"}).status_code == 401
    basic = base64.b64encode(b"viewer:wrong-password").decode()
    assert c.get("/api/v1/dags", headers={"Authorization": f"Basic {basic}"}).status_code == 401
    good = base64.b64encode(f"viewer:{PASSWORD}".encode()).decode()
    resp = c.get("/api/v1/me", headers={"Authorization": f"Basic {good}"})
    assert resp.get_json() == {"username": "viewer", "role": "Viewer", "auth": "basic"}
    assert c.get("/api/v1/me", headers={"Authorization": "Digest x"}).status_code == 401


def test_a_viewer_cannot_trigger_pause_or_clear(web_app: Web) -> None:
    c = web_app.app.test_client()
    h = web_app.auth("Viewer")
    assert c.get("/api/v1/dags/d", headers=h).status_code == 200
    writes = [
        ("patch", "/api/v1/dags/d", {"is_paused": True}),
        ("post", "/api/v1/dags/d/dagRuns", {"conf": {}}),
        ("post", "/api/v1/dags/d/dagRuns/r1/clear", {"task_ids": ["extract"]}),
    ]
    for method, path, body in writes:
        resp = getattr(c, method)(path, json=body, headers=h)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "Viewer" in resp.get_json()["detail"]
    # the same through the pages, with a valid CSRF token
    page = web_app.login("Viewer")
    token = csrf_of(page.get("/dags").get_data(as_text=True))
    for path, form in [
        ("/dags/d/pause", {"paused": "1"}),
        ("/dags/d/trigger", {"conf": "{}"}),
        ("/dags/d/runs/r1/clear", {"task_id": "extract"}),
    ]:
        assert page.post(path, data={**form, "csrf_token": token}).status_code == 403
    # nothing changed
    assert web_app.repo.dags.get("d").is_paused is False
    assert [r.run_id for r in web_app.repo.runs.find("d")] == ["r1"]
    assert web_app.repo.history.task_instance("d", "r1", "extract").state == "success"
    # an Op may
    op = web_app.auth("Op")
    assert c.patch("/api/v1/dags/d", json={"is_paused": True}, headers=op).status_code == 200
    assert web_app.repo.dags.get("d").is_paused is True


def test_a_form_post_without_the_csrf_token_is_refused(web_app: Web) -> None:
    page = web_app.login("Admin")
    assert page.post("/dags/d/pause", data={"paused": "1"}).status_code == 400
    assert (
        page.post("/dags/d/pause", data={"paused": "1", "csrf_token": "forged"}).status_code == 400
    )
    # an API call riding on the session cookie needs it too (a token or basic auth does not)
    assert page.patch("/api/v1/dags/d", json={"is_paused": True}).status_code == 400
    assert web_app.repo.dags.get("d").is_paused is False
    token = csrf_of(page.get("/dags").get_data(as_text=True))
    assert page.post("/dags/d/pause", data={"paused": "1", "csrf_token": token}).status_code == 302
    assert web_app.repo.dags.get("d").is_paused is True
    # the login form itself is protected against login CSRF
    fresh = web_app.app.test_client()
    resp = fresh.post("/login", data={"username": "admin", "password": PASSWORD})
    assert resp.status_code == 400


def test_session_cookie_flags(web_app: Web, engine: Engine, db_url: str, tmp_path: Path) -> None:
    c = web_app.app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    resp = c.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = make_web(web_settings(tmp_path, db_url, webserver__cookie_secure="true"), engine)
    c2 = secure.app.test_client()
    token = csrf_of(c2.get("/login").get_data(as_text=True))
    resp = c2.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert "Secure" in resp.headers["Set-Cookie"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_login_redirects_only_within_the_site(web_app: Web) -> None:
    c = web_app.app.test_client()
    for target, expected in [
        ("/cluster", "/cluster"),
        ("https://evil.example/", "/dags"),
        ("//evil.example/x", "/dags"),
    ]:
        token = csrf_of(c.get("/login").get_data(as_text=True))
        resp = c.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert resp.headers["Location"] == expected


def test_changing_a_password_ends_the_users_sessions(web_app: Web) -> None:
    from haflow.web.credentials import hash_password

    c = web_app.login("Op")
    assert c.get("/dags").status_code == 200
    web_app.repo.users.set("op", utcnow(), password_hash=hash_password("another-password"))
    assert c.get("/dags").status_code == 302
    web_app.repo.users.delete("viewer")
    assert c.get("/api/v1/me", headers=web_app.auth("Viewer")).status_code == 401


def _cookie_copy(web_app: Web, role: str) -> tuple[FlaskClient, FlaskClient]:
    """A logged-in client and a second client holding a copy of its session cookie."""
    c = web_app.login(role)
    assert c.get("/dags").status_code == 200
    cookie = c.get_cookie("haflow_session")
    assert cookie is not None
    thief = web_app.app.test_client()
    thief.set_cookie("haflow_session", cookie.value)
    assert thief.get("/dags").status_code == 200
    return c, thief


def test_a_copied_session_cookie_is_refused_after_logout(web_app: Web) -> None:
    c, thief = _cookie_copy(web_app, "Op")
    token = csrf_of(c.get("/dags").get_data(as_text=True))
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/dags").status_code == 302  # to the login page: the session is over
    assert thief.get("/api/v1/me").status_code == 401


def test_a_role_change_ends_the_users_sessions(web_app: Web) -> None:
    _c, thief = _cookie_copy(web_app, "Op")
    web_app.repo.users.set("op", utcnow(), role="Viewer")
    assert thief.get("/dags").status_code == 302


def test_sessions_are_kept_as_digests_only(web_app: Web) -> None:
    c, _thief = _cookie_copy(web_app, "Viewer")
    with web_app.repo.engine.connect() as conn:
        rows = conn.execute(text("SELECT sid_sha256 FROM web_session")).scalars().all()
    assert rows and all(len(r) == 64 for r in rows)
    cookie = c.get_cookie("haflow_session")
    assert cookie is not None and not any(r in cookie.value for r in rows)


def test_a_revoked_or_expired_token_is_refused(web_app: Web) -> None:
    from haflow.web.credentials import new_token, token_digest

    now = T0  # the web app's clock
    live, revoked, expired = new_token(), new_token(), new_token()
    web_app.repo.users.add_token("viewer", token_digest(live), "live", now)
    tid = web_app.repo.users.add_token("viewer", token_digest(revoked), "gone", now)
    web_app.repo.users.add_token(
        "viewer", token_digest(expired), "old", now - timedelta(days=2), now - timedelta(days=1)
    )
    client = web_app.app.test_client()

    def status(token: str) -> int:
        return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code

    assert [status(live), status(revoked), status(expired)] == [200, 200, 401]
    web_app.repo.users.revoke_token(tid, now)
    assert [status(live), status(revoked)] == [200, 401]
    # a new password ends every token of the user
    from haflow.web.credentials import hash_password

    web_app.repo.users.set("viewer", now, password_hash=hash_password("renewed-password"))
    assert status(live) == 401


def test_an_empty_or_short_secret_key_is_refused(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    settings = web_settings(tmp_path, db_url, webserver__secret_key="")
    with pytest.raises(ConfigError, match="secret_key is empty"):
        create_app(settings, engine=engine)
    settings = web_settings(tmp_path, db_url, webserver__secret_key="k" * 31)
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        create_app(settings, engine=engine)
    create_app(settings, engine=engine, min_key_bytes=1)  # what `haflow standalone` accepts


def test_basic_auth_or_a_token_never_skips_csrf_on_a_form_route(web_app: Web) -> None:
    """A browser holding basic credentials (or a token) for the site: a cross-site form posting
    to an HTML route gets no further than an anonymous one, and the DAG stays unpaused."""
    c = web_app.app.test_client()
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    for header in (f"Basic {basic}", web_app.auth("Admin")["Authorization"]):
        resp = c.post("/dags/d/pause", data={"paused": "1"}, headers={"Authorization": header})
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    me = c.get("/api/v1/dags/d", headers=web_app.auth("Admin")).get_json()
    assert me["is_paused"] is False
    # the same credentials still work where they belong
    ok = c.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"})
    assert ok.get_json()["auth"] == "basic"


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "x\ny", "r" * 5000])
def test_the_page_trigger_refuses_a_bad_run_id(web_app: Web, run_id: str) -> None:
    page = web_app.login("Admin")
    token = csrf_of(page.get("/dags").get_data(as_text=True))
    before = len(web_app.repo.runs.find("d"))
    resp = page.post("/dags/d/trigger", data={"run_id": run_id, "csrf_token": token})
    assert resp.status_code == 302  # back to the DAG, with the reason flashed
    assert len(web_app.repo.runs.find("d")) == before
    shown = page.get(resp.headers["Location"]).get_data(as_text=True)
    assert "run_id must be 1 to 250 characters" in shown


def test_a_refused_login_takes_as_long_for_an_unknown_user_as_for_a_real_one(
    web_app: Web,
) -> None:
    """The password hash is checked for unknown users too (against a dummy): the time of a
    refused login does not tell whether the user exists. Timed in CPU time of the request's
    thread: the work is what leaks, and a busy machine does not blur it."""
    import statistics
    import time

    from haflow.web.auth import verify_login

    def timed(username: str, i: int) -> float:
        env = {"REMOTE_ADDR": f"10.1.{len(username)}.{i}"}  # the limit is not the point here
        with web_app.app.test_request_context("/login", method="POST", environ_base=env):
            started = time.thread_time()  # the work done, not the wait for a busy CPU
            assert verify_login(username, "wrong-password") is None
            return time.thread_time() - started

    timed("nobody-here", 99)  # the dummy hash is made once per process: not timed
    # interleaved, so a busy moment of the machine weighs on both alike
    pairs = [(timed("nobody-here", i), timed("admin", i)) for i in range(9)]
    unknown = statistics.median(u for u, _ in pairs)
    known = statistics.median(k for _, k in pairs)
    print(f"refused login: unknown user {unknown:.4f} s, known user {known:.4f} s")
    assert abs(unknown - known) <= 0.2 * known, (unknown, known)


def test_malformed_input_is_a_4xx_naming_what_is_wrong_never_a_500(web_app: Web) -> None:
    c = web_app.app.test_client()
    h = {**web_app.auth("Admin"), "Content-Type": "application/json"}
    deep = "[" * 5000 + "]" * 5000
    resp = c.post("/api/v1/dags/d/dagRuns", data='{"conf": {"a": ' + deep + "}}", headers=h)
    assert resp.status_code == 400 and "nested more than 64 deep" in resp.get_json()["detail"]
    resp = c.post("/api/v1/dags/d/dagRuns", data='{"conf": {"a": NaN}}', headers=h)
    assert resp.status_code == 400 and "finite" in resp.get_json()["detail"]
    assert c.get(f"/api/v1/dags/d/dagRuns?offset={10**18}", headers=h).status_code == 400
    logs = f"/api/v1/dags/d/dagRuns/x/taskInstances/t/logs/{2**63}"
    assert c.get(logs, headers=h).status_code == 404
    # CR/LF in a login's `next` never reaches the Location header
    page = web_app.app.test_client()
    token = csrf_of(page.get("/login").get_data(as_text=True))
    form = {"username": "admin", "password": PASSWORD, "csrf_token": token}
    resp = page.post("/login", data={**form, "next": "/dags\r\nX-Evil: 1"})
    assert resp.status_code == 302 and "\n" not in resp.headers["Location"]
    assert "X-Evil" not in resp.headers
