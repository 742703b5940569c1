"""The UI in real headless Chromium, against a real `haflow standalone` (scheduler + web).

Logs in with the generated admin password, pauses and unpauses a DAG, triggers it with a conf,
watches the run reach success in the grid, opens a task's log (which prints the conf), and sees
the Cluster page name the leader that /health names. Screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons import start_haflow, stop_group
from tests.integration.conftest import unavailable
from tests.ports import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
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
from haflow.dag import DAG, BashTask, PythonTask

def shout(context=None):
    print("conf greeting:", context["conf"].get("greeting"))

with DAG("browser_dag", schedule=None, start_date=datetime(2026, 1, 1), tags=["ui"]):
    first = BashTask("first", bash_command='echo "conf is $HAFLOW_CONF"')
    second = PythonTask("second", python_callable=shout)
    first >> second
"""


def _get(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if not Path(CHROMIUM).exists():
        unavailable("chromium", FileNotFoundError(CHROMIUM))
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "browser_dag.py").write_text(DAG)
    port = free_port()
    env = {
        **os.environ,
        "HAFLOW_HOME": str(tmp_path),
        "HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "1",
    }
    proc = start_haflow("standalone", "--port", str(port), env=env, log=tmp_path / "standalone.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("standalone's /health", lambda: _ok(base), timeout=60)
        password = (tmp_path / "standalone_admin_password.txt").read_text().strip()
        yield base, password
    finally:
        stop_group(proc, 30)


def _ok(base: str) -> bool:
    try:
        return _get(base + "/health")[0] == 200
    except OSError:
        return False


def test_a_user_drives_a_dag_through_the_ui(standalone: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, password = standalone
    shots = ARTIFACTS / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 800})
        page.set_default_timeout(20_000)
        try:
            page.goto(base + "/")
            expect(page).to_have_url(f"{base}/login?next=/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
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

            page.click("header >> text=Cluster")
            leader = _get(base + "/health")[1]["leader"]
            assert leader
            expect(page.locator('[data-testid="leader-name"]')).to_have_text(leader)
            page.screenshot(path=str(shots / "5-cluster.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
