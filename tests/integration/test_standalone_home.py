"""`haflow standalone`'s home: what it generates is private, and every command run with that
home uses the keys the standalone uses (so `haflow doctor` on a fresh standalone passes)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.daemons import HAFLOW, start_haflow, stop_group
from tests.ports import free_port, web_ready
from tests.waiting import wait_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_standalone_home_is_private_and_doctor_passes_on_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "HAFLOW_HOME": str(home), "HAFLOW__WEBSERVER__PORT": str(port)}
    env.pop("HAFLOW__WEBSERVER__SECRET_KEY", None)
    env.pop("HAFLOW__CORE__FERNET_KEY", None)
    log = tmp_path / "standalone.log"
    proc = start_haflow("standalone", env=env, log=log)
    try:
        wait_for("the standalone's web UI", lambda: web_ready(port), timeout=90)
        assert _mode(home) == 0o700
        for name in ("haflow.cfg", "haflow.db", "webserver_secret_key", "fernet_key"):
            assert _mode(home / name) == 0o600, name
            assert not _mode(home / name) & (stat.S_IRWXG | stat.S_IRWXO), name
        cfg = (home / "haflow.cfg").read_text()
        assert f"secret_key_secret = {home / 'webserver_secret_key'}" in cfg
        assert f"fernet_key_secret = {home / 'fernet_key'}" in cfg
        assert len((home / "webserver_secret_key").read_text().strip()) >= 32
        doctor = subprocess.run(
            [*HAFLOW, "doctor", "--allow-root"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "1 live webserver(s) share this key" in doctor.stdout
        _the_quick_start_runs_an_example(home, env)
    finally:
        stop_group(proc)
    # started again, it keeps its keys and its configuration as they are
    key = (home / "webserver_secret_key").read_text()
    before = (home / "haflow.cfg").read_text()
    proc = start_haflow("standalone", env=env, log=log)
    try:
        wait_for("the standalone's web UI again", lambda: web_ready(port), timeout=90)
        assert (home / "webserver_secret_key").read_text() == key
        assert (home / "haflow.cfg").read_text() == before
    finally:
        stop_group(proc)


EXAMPLES = Path(__file__).parents[2] / "haflow" / "example_dags"


def _the_quick_start_runs_an_example(home: Path, env: dict[str, str]) -> None:
    """The README's first steps: the examples are in the DAGs folder, and `haflow dags trigger
    example_hello` runs to success."""
    copied = sorted(p.name for p in (home / "dags").glob("example_*.py"))
    assert copied == sorted(p.name for p in EXAMPLES.glob("example_*.py")) and copied

    def parsed() -> bool:
        listed = subprocess.run(
            [*HAFLOW, "dags", "list", "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return "example_hello" in listed.stdout

    wait_for("the examples to be parsed", parsed, timeout=60)
    run = subprocess.run(
        [*HAFLOW, "dags", "trigger", "example_hello", "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "success: 3 success" in run.stderr
