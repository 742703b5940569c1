"""The UI in real headless Chromium, against a real `haflow standalone` (scheduler + web)
behind a real haproxy running the deploy kit's configuration over HTTPS, with the certificate
`deploy/make-secrets.sh` generates (Chromium trusts that certificate's key and nothing else).

Logs in with the generated admin password (the session cookie is Secure), pauses and
unpauses a DAG, triggers it with a conf, watches the run reach success in the grid, opens a
task's log (which prints the conf), and sees the Cluster page name the leader that /health
names; follows the log of a running task on its page until it ends. Screenshots go to
artifacts/browser/.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import launch, start_haflow, stop_group
from tests.integration.conftest import unavailable
from tests.ports import free_ports
from tests.waiting import wait_for

# Chromium aborts a page load in flight with ERR_NETWORK_CHANGED when a network interface
# appears or goes (CI saw it when a parallel test started a docker network): these tests run in
# the serial run, when no other test changes the machine's networks
pytestmark = [pytest.mark.slow, pytest.mark.serial]
DEPLOY = Path(__file__).parents[2] / "deploy"
ARTIFACTS = Path(os.environ.get("HAFLOW_TEST_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAG = """
from datetime import datetime
from haflow import Param
from haflow.dag import DAG, BashTask, PythonTask

def shout(context=None):
    print("conf greeting:", context["conf"].get("greeting"))

with DAG("browser_dag", schedule=None, start_date=datetime(2026, 1, 1), tags=["ui"]):
    first = BashTask("first", bash_command='echo "conf is $HAFLOW_CONF"')
    second = PythonTask("second", python_callable=shout)
    first >> second

with DAG("browser_params", schedule=None, start_date=datetime(2026, 1, 1),
         params={"n": Param(3, type="integer", minimum=1, description="how many"),
                 "mode": Param("delta", enum=["full", "delta"])}):
    BashTask("show", bash_command="echo $HAFLOW_PARAMS")

with DAG("browser_slow", schedule=None, start_date=datetime(2026, 1, 1)):
    BashTask("ticker", bash_command="for i in 1 2 3 4 5 6 7; do echo line-$i; sleep 1; done")
"""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a: Any, **kw: Any) -> None:
        return None


def _get(url: str, cafile: Path, headers: dict[str, str] | None = None) -> tuple[int, Message]:
    """GET `url` verifying the server's certificate against `cafile` (the generated one, and
    no other); redirects are not followed."""
    context = ssl.create_default_context(cafile=str(cafile))
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=3) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, exc.headers


def _spki_sha256(pem: Path) -> str:
    """The base64 SHA-256 of the certificate's public key: what Chromium is told to trust."""
    pub = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(pem)],
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _haproxy_cfg(web_port: int, tls: int, plain: int, stats: int) -> str:
    """deploy/haproxy.cfg with its ports on loopback and master1 at the standalone's port."""
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    for old, new in (
        ("bind *:8443 ", f"bind 127.0.0.1:{tls} "),
        ("bind *:8080", f"bind 127.0.0.1:{plain}"),
        ("bind *:8404", f"bind 127.0.0.1:{stats}"),
        ("server master1 master1:8080 check", f"server master1 127.0.0.1:{web_port} check"),
        ("    server master2 master2:8080 check\n", ""),
    ):
        assert old in cfg, old
        cfg = cfg.replace(old, new)
    return cfg


@dataclass
class Site:
    base: str
    password: str
    pem: Path
    plain: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        unavailable("chromium", FileNotFoundError(CHROMIUM))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        unavailable("haproxy", FileNotFoundError(haproxy))
    secrets = tmp_path / "secrets"
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(secrets)], check=True)
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "browser_dag.py").write_text(DAG)
    port, tls, plain, stats = free_ports(4)
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "1",
        "HAFLOW__WEBSERVER__COOKIE_SECURE": "true",
        "HAFLOW__WEBSERVER__PROXY_COUNT": "1",
    }
    web = start_haflow("standalone", "--port", str(port), env=env, log=tmp_path / "standalone.log")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(_haproxy_cfg(port, tls, plain, stats))
    lb_env = {
        **os.environ,
        "HAFLOW_TLS_PEM": str(secrets / "tls.pem"),
        "HAFLOW_HTTPS_PORT": str(tls),
    }
    lb = launch([haproxy, "-f", str(cfg)], lb_env, tmp_path / "haproxy.log")
    base = f"https://127.0.0.1:{tls}"
    try:
        wait_for("/ready through haproxy", lambda: _ok(base, secrets / "tls.pem"), timeout=60)
        password = (tmp_path / "standalone_admin_password.txt").read_text().strip()
        yield Site(base, password, secrets / "tls.pem", f"http://127.0.0.1:{plain}")
    finally:
        stop_group(lb, 10)
        stop_group(web, 30)


def _clear_with_downstream(page: Any, base: str, shots: Path) -> None:
    """The task page clears with its downstream by default: first and second run again."""
    from playwright.sync_api import expect

    page.goto(f"{base}/dags/browser_dag/runs/ui_run/tasks/first")
    expect(page.locator('[data-testid="clear-downstream"]')).to_be_checked()
    page.click('[data-testid="clear"]')
    expect(page.locator(".flash")).to_contain_text(
        "cleared 2 task instance(s) of ui_run: first, second"
    )
    _reload_until_success(page, f"{base}/dags/browser_dag/runs/ui_run/tasks/second")
    expect(page.locator("p", has_text="attempt 2 ")).to_be_visible()
    page.screenshot(path=str(shots / "5-cleared-ran-again.png"), full_page=True)


def _follow_a_running_log(page: Any, base: str, shots: Path) -> None:
    """The page of a running task follows its log (no reload) and shows the end by itself."""
    from playwright.sync_api import expect

    page.goto(f"{base}/dags/browser_slow")
    page.click("summary")
    page.fill("input[name=run_id]", "live")
    page.click('[data-testid="trigger"]')
    expect(page.locator(".flash")).to_contain_text("triggered live")
    url = f"{base}/dags/browser_slow/runs/live/tasks/ticker"
    deadline = time.monotonic() + 60
    while not page.locator('[data-testid="log-following"]').count():
        assert time.monotonic() < deadline, "the ticker's attempt was never queued"
        page.wait_for_timeout(300)
        page.goto(url)
    log = page.locator('[data-testid="log"]')
    expect(log).to_contain_text("line-2", timeout=20_000)
    assert "line-5" not in log.inner_text()
    expect(log).to_contain_text("line-5", timeout=10_000)  # grown in place: no reload
    page.screenshot(path=str(shots / "5b-log-following.png"), full_page=True)
    expect(page.locator('[data-testid="ti-state"]')).to_have_text("success", timeout=20_000)
    expect(page.locator('[data-testid="log-following"]')).to_have_count(0)
    expect(log).to_contain_text("line-7")


def _trigger_form_with_params(page: Any, base: str, shots: Path) -> None:
    """The trigger form shows each param with its default and refuses a bad value naming it."""
    from playwright.sync_api import expect

    page.goto(f"{base}/dags/browser_params")
    page.click("summary")
    n = page.locator('[data-testid="param-n"]')
    expect(n).to_have_value("3")
    expect(page.locator('[data-testid="param-mode"]')).to_have_value("delta")
    n.fill("0")
    page.click('[data-testid="trigger"]')
    expect(page.locator(".flash")).to_contain_text("param 'n' must be >= 1")
    page.screenshot(path=str(shots / "5d-param-refused.png"), full_page=True)
    page.click("summary")
    page.locator('[data-testid="param-n"]').fill("5")
    page.select_option('[data-testid="param-mode"]', "full")
    page.fill("input[name=run_id]", "with_params")
    page.click('[data-testid="trigger"]')
    expect(page.locator(".flash")).to_contain_text("triggered with_params")


def _charts(page: Any, base: str, shots: Path) -> None:
    """The grid draws the durations of ended runs; a run's Gantt chart draws its attempts."""
    from playwright.sync_api import expect

    page.goto(f"{base}/dags/browser_dag")
    expect(page.locator('[data-testid="durations"] rect.bar[data-run="ui_run"]')).to_have_count(1)
    page.click('[data-testid="gantt-ui_run"]')
    attempts = page.locator('[data-testid="gantt"] g.attempt')
    expect(attempts).to_have_count(4)  # first and second, and both again after the clear
    expect(page.locator('[data-testid="gantt"] g.attempt[data-task="second #2"]')).to_have_count(1)
    box = page.locator('[data-testid="gantt"] g.attempt[data-task="first #1"] rect.bar')
    assert box.bounding_box()["width"] >= 2  # drawn, not just present
    page.screenshot(path=str(shots / "5c-gantt.png"), full_page=True)
    page.click('[data-testid="run-code"]')  # the code version the run ran
    expect(page.locator('[data-testid="code"]')).to_contain_text('"browser_dag"')
    expect(page.locator('[data-testid="versions"] .pill')).to_have_text("now")
    page.screenshot(path=str(shots / "5d-code.png"), full_page=True)


def _cluster_page_names_the_leader(page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    page.click("header >> text=Cluster")
    # /health names the leader to a logged-in session only
    leader = page.evaluate("() => fetch('/health').then(r => r.json())")["leader"]
    assert leader
    expect(page.locator('[data-testid="leader-name"]')).to_have_text(leader)
    page.screenshot(path=str(shots / "6-cluster.png"), full_page=True)


def _reload_until_success(page: Any, url: str, timeout_s: float = 60.0) -> None:
    """The task page does not refresh itself: load it again until the task shows success."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.goto(url)
        if page.locator('[data-testid="ti-state"]').inner_text() == "success":
            return
        page.wait_for_timeout(300)
    raise AssertionError(f"{url} did not show success within {timeout_s} s")


def _ok(base: str, pem: Path) -> bool:
    try:
        return _get(base + "/ready", pem)[0] == 200
    except OSError:
        return False


def test_the_site_is_https_only_with_the_generated_certificate(site: Site) -> None:
    status, headers = _get(site.base + "/login", site.pem)  # verified against the PEM
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=")  # header names: any case
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    # plain HTTP is answered by a redirect to HTTPS, on the port clients use
    plain = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        plain.open(site.plain + "/login", timeout=3)
    redirect.value.close()
    assert redirect.value.code == 301
    assert redirect.value.headers["Location"] == site.base + "/login"
    # a forwarded host or scheme sent by a client is not believed
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    status, headers = _get(site.base + "/", site.pem, forged)
    assert status == 302 and "evil.example" not in headers["Location"]
    assert not headers["Location"].startswith("http:")


def test_a_user_drives_a_dag_through_the_ui(site: Site) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, password = site.base, site.password
    shots = ARTIFACTS / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    trust = f"--ignore-certificate-errors-spki-list={_spki_sha256(site.pem)}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, trust])
        page = browser.new_page(viewport={"width": 1366, "height": 800})
        page.set_default_timeout(20_000)
        try:
            page.goto(base + "/")
            expect(page).to_have_url(f"{base}/login?next=/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            (cookie,) = [c for c in page.context.cookies() if c["name"] == "haflow_session"]
            assert cookie["secure"] and cookie["httpOnly"]
            row = page.locator('tr[data-dag="browser_dag"]')
            expect(row).to_be_visible()
            page.screenshot(path=str(shots / "1-dags.png"), full_page=True)

            page.click('[data-testid="pause-browser_dag"]')
            expect(row.locator(".paused-state")).to_have_text("paused")
            page.screenshot(path=str(shots / "2-paused.png"), full_page=True)
            page.click('[data-testid="pause-browser_dag"]')
            expect(row.locator(".paused-state")).to_have_text("active")

            row.locator("a", has_text="browser_dag").click()
            page.click("summary")
            page.fill("textarea[name=conf]", '{"greeting": "hi-from-the-browser"}')
            page.fill("input[name=run_id]", "ui_run")
            page.click('[data-testid="trigger"]')
            expect(page.locator(".flash")).to_contain_text("triggered ui_run")
            done = page.locator('td.cell[data-run="ui_run"][data-state="success"]')
            done.wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "3-grid-success.png"), full_page=True)

            page.click('a[data-task="second"][data-run="ui_run"]')
            expect(page.locator('[data-testid="ti-state"]')).to_have_text("success")
            expect(page.locator('[data-testid="log"]')).to_contain_text(
                "conf greeting: hi-from-the-browser"
            )
            page.screenshot(path=str(shots / "4-task-log.png"), full_page=True)
            _clear_with_downstream(page, base, shots)
            _follow_a_running_log(page, base, shots)
            _charts(page, base, shots)
            _trigger_form_with_params(page, base, shots)

            _cluster_page_names_the_leader(page, shots)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
