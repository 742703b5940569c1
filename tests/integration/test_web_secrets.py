"""Variables and connections through the REST API and the pages, on every metastore: writes,
masking, a password that no response holds, what a Viewer may not see or do, a missing key;
and one run in real headless Chromium where an Op adds secrets and a Viewer looks for them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import text
from sqlalchemy.engine import Engine
from werkzeug.serving import make_server

from haflow.core.secrets import Connection
from haflow.metastore.crypto import Crypto
from haflow.metastore.repository import Repository
from tests.integration.conftest import unavailable
from tests.integration.test_web_browser import CHROMIUM, CHROMIUM_ARGS
from tests.integration.web_fixtures import T0, Web, csrf_of, make_web, web_settings

SECRET = "s3cr3t-Value-9"  # a sensitive variable's value
PASSWORD = "pw-Hunter2-xyz"  # a connection's password
TOKEN = "tok-Abc123-def"  # a sensitive field of a connection's extra
LOGIN = "etl_login_user"
URLS = ["/variables", "/connections"]


def _seed(repo: Repository) -> None:
    repo.variables.set("greeting", "hello-plain", T0, "shown to Op and Admin")
    repo.variables.set("db_password", SECRET, T0, "masked in every list")
    repo.connections.add(_warehouse(), T0)


def _warehouse() -> Connection:
    return Connection(
        "warehouse",
        "postgres",
        host="db.example",
        login=LOGIN,
        password=PASSWORD,
        schema="dw",
        port=5432,
        extra={"sslmode": "require", "api_token": TOKEN},
        description="the warehouse",
    )


@pytest.fixture
def seeded(web_app: Web) -> Web:
    _seed(web_app.repo)
    return web_app


def _no_secret_in(body: str, *secrets: str) -> None:
    for s in secrets or (SECRET, PASSWORD, TOKEN):
        assert s not in body, f"{s!r} leaked"


def test_variables_through_the_api(seeded: Web, engine: Engine) -> None:
    c, op = seeded.app.test_client(), seeded.auth("Op")
    listed = c.get("/api/v1/variables", headers=op)
    assert listed.get_json() == {
        "variables": [
            {"key": "db_password", "value": "***", "description": "masked in every list"},
            {"key": "greeting", "value": "hello-plain", "description": "shown to Op and Admin"},
        ],
        "total_entries": 2,
        "limit": 100,
        "offset": 0,
    }
    _no_secret_in(listed.get_data(as_text=True))
    paged = c.get("/api/v1/variables?limit=1&offset=1", headers=op).get_json()
    assert [v["key"] for v in paged["variables"]] == ["greeting"] and paged["total_entries"] == 2
    # an Op or Admin reads one value, a sensitive one too
    one = c.get("/api/v1/variables/db_password", headers=seeded.auth("Admin")).get_json()
    assert one == {"key": "db_password", "value": SECRET, "description": "masked in every list"}
    made = c.post("/api/v1/variables", json={"key": "region", "value": "eu-west-1"}, headers=op)
    assert made.status_code == 200
    assert made.get_json() == {"key": "region", "value": "eu-west-1", "description": ""}
    # the metastore holds Fernet tokens, never the plaintext
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT val FROM variable"))]
    assert len(stored) == 3 and not any("eu-west" in v or SECRET in v for v in stored)


def test_a_variable_is_changed_and_deleted_through_the_api(seeded: Web) -> None:
    c, op = seeded.app.test_client(), seeded.auth("Op")
    url = "/api/v1/variables/greeting"
    patched = c.patch(url, json={"value": "hi"}, headers=op).get_json()
    assert patched == {"key": "greeting", "value": "hi", "description": "shown to Op and Admin"}
    # with update_mask (Airflow's), only the fields it names change
    masked = c.patch(
        url + "?update_mask=description",
        json={"key": "greeting", "value": "ignored", "description": "new"},
        headers=op,
    ).get_json()
    assert masked == {"key": "greeting", "value": "hi", "description": "new"}
    assert c.delete(url, headers=op).status_code == 204
    assert c.get(url, headers=op).status_code == 404
    assert c.delete(url, headers=op).status_code == 404
    assert c.patch(url, json={"value": "x"}, headers=op).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "", {"key": "bad key", "value": "x"}, "key"),
        ("post", "", {"key": "k", "value": 5}, "value"),
        ("post", "", {"key": "k", "value": "nul\x00"}, "value"),
        ("post", "", {"key": "k", "value": "x", "description": 3}, "description"),
        ("post", "", {"key": "k", "value": "x", "other": 1}, "other"),
        ("patch", "/greeting", {"key": "other", "value": "x"}, "key"),
        ("patch", "/greeting", {}, "body"),
        ("patch", "/greeting?update_mask=key", {"value": "x"}, "update_mask"),
        ("patch", "/greeting?update_mask=value", {"description": "x"}, "value"),
    ],
)
def test_a_bad_variable_is_refused_naming_the_field(
    seeded: Web, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    c = seeded.app.test_client()
    resp = getattr(c, method)(f"/api/v1/variables{path}", json=body, headers=seeded.auth("Op"))
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["field"] == field
    assert seeded.repo.variables.get("greeting").value == "hello-plain"


def test_connections_through_the_api_never_return_the_password(seeded: Web) -> None:
    c, admin = seeded.app.test_client(), seeded.auth("Admin")
    made = c.post(
        "/api/v1/connections",
        json={
            "connection_id": "http_api",
            "conn_type": "http",
            "host": "api.example",
            "password": "another-pass-1",
            "extra": {"timeout": 5, "headers": {"Authorization": "Bearer xyz-token-1"}},
        },
        headers=admin,
    )
    assert made.status_code == 200
    body = made.get_json()
    assert "password" not in body and json.loads(body["extra"]) == {
        "timeout": 5,
        "headers": {"Authorization": "***"},
    }
    _no_secret_in(made.get_data(as_text=True), "another-pass-1", "xyz-token-1")
    assert seeded.repo.connections.get("http_api").password == "another-pass-1"
    again = c.post(
        "/api/v1/connections",
        json={"connection_id": "http_api", "conn_type": "http"},
        headers=admin,
    )
    assert again.status_code == 409
    listed = c.get("/api/v1/connections", headers=admin)
    assert listed.get_json()["total_entries"] == 2
    _no_secret_in(listed.get_data(as_text=True), PASSWORD, TOKEN, "another-pass-1")
    one = c.get("/api/v1/connections/warehouse", headers=admin)
    _no_secret_in(one.get_data(as_text=True), PASSWORD, TOKEN)
    assert one.get_json() == {
        "connection_id": "warehouse",
        "conn_type": "postgres",
        "description": "the warehouse",
        "host": "db.example",
        "login": LOGIN,
        "schema": "dw",
        "port": 5432,
        "extra": json.dumps({"sslmode": "require", "api_token": "***"}),
    }


def test_a_connection_is_changed_keeping_what_is_left_out(seeded: Web) -> None:
    c, op = seeded.app.test_client(), seeded.auth("Op")
    url = "/api/v1/connections/warehouse"
    resp = c.patch(url, json={"host": "db2.example"}, headers=op)
    assert resp.status_code == 200 and resp.get_json()["host"] == "db2.example"
    _no_secret_in(resp.get_data(as_text=True), PASSWORD, TOKEN)
    stored = seeded.repo.connections.get("warehouse")
    assert stored.password == PASSWORD and stored.extra["api_token"] == TOKEN
    # the extra as shown (masked), edited and sent back: the masked field keeps its value
    shown = json.loads(c.get(url, headers=op).get_json()["extra"])
    sent = json.dumps({**shown, "sslmode": "verify-full"})
    assert c.patch(url, json={"extra": sent}, headers=op).status_code == 200
    assert seeded.repo.connections.get("warehouse").extra == {
        "sslmode": "verify-full",
        "api_token": TOKEN,
    }
    c.patch(url + "?update_mask=password", json={"password": "new-pass-42", "port": 1}, headers=op)
    stored = seeded.repo.connections.get("warehouse")
    assert stored.password == "new-pass-42" and stored.port == 5432
    c.patch(url, json={"password": None}, headers=op)
    assert seeded.repo.connections.get("warehouse").password is None
    assert c.delete(url, headers=op).status_code == 204
    assert c.get(url, headers=op).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"connection_id": "bad id", "conn_type": "http"}, "connection_id"),
        ({"connection_id": "x"}, "conn_type"),
        ({"connection_id": "x", "conn_type": ""}, "conn_type"),
        ({"connection_id": "x", "conn_type": "http", "port": "80"}, "port"),
        ({"connection_id": "x", "conn_type": "http", "port": 70000}, "port"),
        ({"connection_id": "x", "conn_type": "http", "extra": "{oops"}, "extra"),
        ({"connection_id": "x", "conn_type": "http", "extra": "[1]"}, "extra"),
        ({"connection_id": "x", "conn_type": "http", "extra": '{"a": NaN}'}, "extra"),
        ({"connection_id": "x", "conn_type": "http", "host": "h" * 501}, "host"),
        ({"connection_id": "x", "conn_type": "http", "login": 7}, "login"),
        ({"connection_id": "x", "conn_type": "http", "uri": "http://h"}, "uri"),
    ],
)
def test_a_bad_connection_is_refused_naming_the_field(
    seeded: Web, body: dict[str, Any], field: str
) -> None:
    c = seeded.app.test_client()
    resp = c.post("/api/v1/connections", json=body, headers=seeded.auth("Op"))
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["field"] == field
    assert seeded.repo.connections.count() == 1
    if field != "connection_id":  # the same field, changed
        patch = {k: v for k, v in body.items() if k != "connection_id"} or {"conn_type": None}
        resp = c.patch("/api/v1/connections/warehouse", json=patch, headers=seeded.auth("Op"))
        assert resp.status_code == 400 and resp.get_json()["field"] == field
    assert seeded.repo.connections.get("warehouse") == _warehouse()


def test_a_viewer_reads_no_secret_through_the_api(seeded: Web) -> None:
    c, viewer = seeded.app.test_client(), seeded.auth("Viewer")
    listed = c.get("/api/v1/variables", headers=viewer)
    assert {v["key"]: v["value"] for v in listed.get_json()["variables"]} == {
        "db_password": "***",
        "greeting": "***",
    }
    _no_secret_in(listed.get_data(as_text=True), SECRET, "hello-plain")
    one = c.get("/api/v1/variables/greeting", headers=viewer)
    assert one.status_code == 403
    assert "Viewers cannot read variable values" in one.get_json()["detail"]
    assert c.get("/api/v1/variables/nope", headers=viewer).status_code == 403  # not even 404
    for resp in (
        c.get("/api/v1/connections", headers=viewer),
        c.get("/api/v1/connections/warehouse", headers=viewer),
    ):
        assert resp.status_code == 200
        _no_secret_in(resp.get_data(as_text=True), PASSWORD, TOKEN, LOGIN, "sslmode")
    shown = c.get("/api/v1/connections/warehouse", headers=viewer).get_json()
    assert shown["host"] == "db.example" and shown["login"] is None and shown["extra"] is None
    writes = [
        ("post", "/api/v1/variables", {"key": "k", "value": "v"}),
        ("patch", "/api/v1/variables/greeting", {"value": "v"}),
        ("delete", "/api/v1/variables/greeting", None),
        ("post", "/api/v1/connections", {"connection_id": "x", "conn_type": "http"}),
        ("patch", "/api/v1/connections/warehouse", {"host": "evil"}),
        ("delete", "/api/v1/connections/warehouse", None),
    ]
    for method, path, body in writes:
        assert getattr(c, method)(path, json=body, headers=viewer).status_code == 403, path
    assert seeded.repo.variables.count() == 2
    assert seeded.repo.connections.get("warehouse").host == "db.example"


def _get_routes(w: Web) -> list[str]:
    values = {"dag_id": "d", "run_id": "r1", "dag_run_id": "r1", "task_id": "extract"}
    values |= {"attempt": "1", "pool_name": "default_pool", "backfill_id": "1"}
    values |= {"variable_key": "db_password", "connection_id": "warehouse", "version": "current"}
    values |= {"event_log_id": "1", "xcom_key": "return_value", "file_token": "d"}
    paths = []
    for rule in w.app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<int:{name}>", values[name]).replace(f"<{name}>", values[name])
        paths.append(path)
    return paths


def test_no_page_or_api_answer_shows_a_viewer_a_secret(seeded: Web) -> None:
    page, api = seeded.login("Viewer"), seeded.auth("Viewer")
    paths = _get_routes(seeded)
    assert "/variables" in paths and "/api/v1/connections/warehouse" in paths
    for path in paths:
        body = page.get(path).get_data(as_text=True) + page.get(path, headers=api).get_data(
            as_text=True
        )
        _no_secret_in(body, SECRET, PASSWORD, TOKEN, "hello-plain", LOGIN)
    listing = page.get("/variables").get_data(as_text=True)
    assert 'data-testid="variable-db_password"' in listing and "masked in every list" in listing
    assert 'data-testid="value-greeting">***<' in listing
    assert 'data-testid="set-variable"' not in listing and "delete-greeting" not in listing
    conns = page.get("/connections").get_data(as_text=True)
    assert "db.example" in conns and 'data-testid="add-connection"' not in conns


def test_the_variables_page_lists_a_page_at_a_time(seeded: Web) -> None:
    many = {f"v{n:03d}": f"value-{n}" for n in range(150)}
    seeded.repo.variables.set_many(many, T0)  # with the 2 seeded: 152, two pages
    page = seeded.login("Op")
    first = page.get("/variables").get_data(as_text=True)
    second = page.get("/variables?page=2").get_data(as_text=True)
    beyond = page.get("/variables?page=99").get_data(as_text=True)
    assert first.count('<tr data-testid="variable-') == 100 and "page 1 of 2" in first
    assert second.count('<tr data-testid="variable-') == 52 and "page 2 of 2" in second
    assert "value-149" in second and "value-149" not in first
    assert beyond == second  # past the end: the last page


def test_a_viewers_form_posts_are_refused(seeded: Web) -> None:
    page = seeded.login("Viewer")
    token = csrf_of(page.get("/dags").get_data(as_text=True))
    posts = [
        ("/variables", {"key": "k", "value": "v"}),
        ("/variables/greeting/delete", {}),
        ("/connections", {"connection_id": "x", "conn_type": "http"}),
        ("/connections/warehouse", {"conn_type": "http", "host": "evil"}),
        ("/connections/warehouse/delete", {}),
    ]
    for path, form in posts:
        assert page.post(path, data={**form, "csrf_token": token}).status_code == 403, path
    assert seeded.repo.variables.count() == 2
    assert seeded.repo.connections.get("warehouse").host == "db.example"


def _post(page: FlaskClient, path: str, form: dict[str, str]) -> str:
    token = csrf_of(page.get("/variables").get_data(as_text=True))
    resp = page.post(path, data={**form, "csrf_token": token}, follow_redirects=True)
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def test_an_op_sets_variables_through_the_page(seeded: Web) -> None:
    page = seeded.login("Op")
    shown = _post(page, "/variables", {"key": "api_token", "value": "tok-\r\nline2-9876"})
    assert "variable api_token set" in shown and 'data-testid="value-api_token">***<' in shown
    _no_secret_in(shown, "tok-", SECRET)
    assert seeded.repo.variables.get("api_token").value == "tok-\nline2-9876"
    assert 'data-testid="value-greeting">hello-plain<' in shown
    # an empty value in a sensitive variable's edit form keeps the stored value
    form = {"key": "db_password", "value": "", "keep_if_empty": "1", "description": "d2"}
    _post(page, "/variables", form)
    kept = seeded.repo.variables.get("db_password")
    assert kept.value == SECRET and kept.description == "d2"
    _post(page, "/variables", {"key": "greeting", "value": "", "description": ""})
    assert seeded.repo.variables.get("greeting").value == ""
    assert "must be 1 to 250" in _post(page, "/variables", {"key": "bad key", "value": "x"})
    assert "deleted variable api_token" in _post(page, "/variables/api_token/delete", {})
    assert "no variable" in _post(page, "/variables/api_token/delete", {})


def test_an_op_adds_and_edits_connections_through_the_page(seeded: Web) -> None:
    page = seeded.login("Op")
    form = {
        "connection_id": "ftp",
        "conn_type": "ftp",
        "host": "ftp.example",
        "port": "21",
        "login": "ftpuser",
        "password": "ftp-pass-777",
        "extra": '{"passive": true, "secret_key": "sk-55555"}',
        "description": "",
        "schema": "",
    }
    shown = _post(page, "/connections", form)
    assert "connection ftp added" in shown and 'data-testid="connection-ftp"' in shown
    _no_secret_in(shown, "ftp-pass-777", "sk-55555", PASSWORD, TOKEN)
    assert "&#34;secret_key&#34;: &#34;***&#34;" in shown
    assert 'name="password" autocomplete="new-password" value=' not in shown  # never filled
    # the edit form as shown: password empty, extra masked; both keep their stored values
    edit = {**form, "host": "ftp2.example", "password": ""}
    edit["extra"] = json.dumps({"passive": False, "secret_key": "***"})
    assert "connection ftp changed" in _post(page, "/connections/ftp", edit)
    stored = seeded.repo.connections.get("ftp")
    assert (stored.host, stored.password) == ("ftp2.example", "ftp-pass-777")
    assert stored.extra == {"passive": False, "secret_key": "sk-55555"}
    _post(page, "/connections/ftp", {**edit, "clear_password": "1"})
    assert seeded.repo.connections.get("ftp").password is None
    assert "port must be" in _post(page, "/connections/ftp", {**edit, "port": "x"})
    assert "exists" in _post(page, "/connections", form)
    assert "deleted connection ftp" in _post(page, "/connections/ftp/delete", {})


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_without_the_key_the_answer_names_the_setting(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    keyed = Repository(
        engine, cluster="default", actor="t", crypto=Crypto(Fernet.generate_key().decode())
    )
    keyed.variables.set("written_elsewhere", "x", T0)
    for key, says in (
        ("", "fernet_key is empty"),
        (Fernet.generate_key().decode(), "variable 'written_elsewhere' cannot be decrypted"),
    ):
        w = make_web(web_settings(tmp_path, db_url, core__fernet_key=key), engine)
        c, op = w.app.test_client(), w.auth("Op")
        resp = c.get("/api/v1/variables", headers=op)
        assert resp.status_code == 500 and says in resp.get_json()["detail"], resp.get_json()
        page = w.login("Op").get("/variables")
        assert page.status_code == 500 and escape(says) in page.get_data(as_text=True)
    resp = c.post("/api/v1/variables", json={"key": "k", "value": "v"}, headers=op)
    assert resp.status_code == 200  # a key it has: it writes, though it cannot read the old


@pytest.fixture
def served(seeded: Web) -> Iterator[str]:
    """The seeded app served over HTTP on loopback by a thread."""
    server = make_server("127.0.0.1", 0, seeded.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def _log_in(browser: Any, base: str, user: str) -> Any:
    from tests.integration.web_fixtures import PASSWORD as USER_PASSWORD

    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", USER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dags")
    return page


@pytest.mark.slow
@pytest.mark.serial  # Chromium: see test_web_browser's marks
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_in_chromium_an_op_adds_secrets_and_a_viewer_sees_none(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        unavailable("chromium", FileNotFoundError(CHROMIUM))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            op = _log_in(browser, served, "op")
            op.click("header >> text=Variables")
            op.fill('[data-testid="variable-key"]', "slack_token")
            op.fill('[data-testid="variable-value"]', "xoxb-chromium-4242")
            op.click('[data-testid="set-variable"]')
            expect(op.locator(".flash")).to_contain_text("variable slack_token set")
            expect(op.locator('[data-testid="value-slack_token"]')).to_have_text("***")
            expect(op.locator('[data-testid="value-greeting"]')).to_have_text("hello-plain")
            op.click("header >> text=Connections")
            add = op.locator('form[action="/connections"]')
            add.locator("input[name=connection_id]").fill("smtp")
            add.locator("input[name=conn_type]").fill("smtp")
            add.locator("input[name=password]").fill("smtp-pass-31337")
            add.locator("textarea[name=extra]").fill('{"api_key": "ak-chromium-777"}')
            op.click('[data-testid="add-connection"]')
            expect(op.locator('[data-testid="connection-smtp"]')).to_contain_text("***")
            _no_secret_in(op.content(), "smtp-pass-31337", "ak-chromium-777", PASSWORD, TOKEN)

            viewer = _log_in(browser, served, "viewer")
            for path in URLS:
                viewer.goto(served + path)
                html = viewer.content()
                _no_secret_in(html, "xoxb-chromium-4242", "smtp-pass-31337", "ak-chromium-777")
                _no_secret_in(html, SECRET, PASSWORD, TOKEN, "hello-plain", LOGIN)
                assert "***" in html and "<form" not in html.split("</header>")[1]
            expect(viewer.locator('[data-testid="connection-smtp"]')).to_be_visible()
        finally:
            browser.close()
