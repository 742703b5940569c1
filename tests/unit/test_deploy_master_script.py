"""deploy/bin/haflow-master: a master's scheduler and webserver live and die together.

Run against a stand-in `haflow` on PATH that records its signals, so the script's own logic
(wait for either child, stop the other, exit code) is what is tested.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "bin" / "haflow-master"

# `haflow scheduler|webserver`: write "<role> started", then on SIGTERM "<role> got TERM" and
# exit 0; `haflow webserver` exits 3 by itself when $WEB_DIES is set.
FAKE_HAFLOW = """#!/bin/bash
role=$1
log=$FAKE_LOG
trap 'echo "$role got TERM" >> "$log"; exit 0' TERM
echo "$role started $*" >> "$log"
if [ "$role" = webserver ] && [ -n "${WEB_DIES:-}" ]; then sleep 0.5; exit 3; fi
while true; do sleep 0.1; done
"""


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The scripts a test started; their process groups are killed whatever the outcome."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def start(
    tmp_path: Path, started: list[subprocess.Popen[bytes]], **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "haflow"
    fake.write_text(FAKE_HAFLOW)
    fake.chmod(0o755)
    log = tmp_path / "log"
    log.touch()
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    with (tmp_path / "out").open("w") as out:  # the child keeps its own copy
        proc = subprocess.Popen(
            [str(SCRIPT), "--workers", "2"],
            env={**environ, **env},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    started.append(proc)
    wait_for("both daemons to start", lambda: log.read_text().count("started") == 2, 10)
    return proc, log


def test_webserver_death_stops_the_scheduler_and_fails(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    proc, log = start(tmp_path, started, WEB_DIES="1")
    assert proc.wait(10) == 1
    assert "the webserver exited" in (tmp_path / "out").read_text()
    assert "scheduler got TERM" in log.read_text()
    assert "webserver started webserver --workers 2" in log.read_text()


def test_scheduler_death_stops_the_webserver_and_fails(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    proc, log = start(tmp_path, started)
    pids = subprocess.run(
        ["pgrep", "-f", "-P", str(proc.pid), "haflow scheduler"], capture_output=True, text=True
    ).stdout.split()
    assert len(pids) == 1
    os.kill(int(pids[0]), signal.SIGKILL)
    assert proc.wait(10) == 1
    assert "webserver got TERM" in log.read_text()


def test_sigterm_stops_both_gracefully(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    proc, log = start(tmp_path, started)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    text = log.read_text()
    assert "scheduler got TERM" in text and "webserver got TERM" in text
