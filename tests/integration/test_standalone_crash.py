"""`haflow standalone` killed with SIGKILL mid-run, then restarted: the run completes.

The interrupted attempt is reclaimed (state lost) and retried; its process does not outlive
the killed standalone; nothing is recorded twice; Ctrl-C then stops cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW
from tests.ports import free_port
from tests.waiting import wait_for

DAG = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("crash_dag", start_date=datetime(2026, 1, 1)):
    slow = BashTask("slow", bash_command=(
        'echo "start $HAFLOW_ATTEMPT $$" >> {marks}; sleep 4; echo "end $HAFLOW_ATTEMPT" >> {marks}'
    ))
    after = BashTask("after", bash_command='echo "after $HAFLOW_ATTEMPT" >> {marks}')
    slow >> after
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "dags").mkdir()
    marks = tmp_path / "marks.txt"
    (tmp_path / "dags" / "crash.py").write_text(DAG.format(marks=marks))
    return tmp_path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HAFLOW_HOME": str(home),
        "HAFLOW__WORKER__TIMEOUT": "3",
        "HAFLOW__WORKER__HEARTBEAT_SEC": "0.5",
        "HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "1",
        "HAFLOW__WEBSERVER__PORT": str(free_port()),
    }


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:  # whatever a failed test left behind
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if p.stdout:
            p.stdout.close()


def start(env: dict[str, str], procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [*HAFLOW, "standalone", "--parallelism", "2"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs.append(p)
    return p


def marks(home: Path) -> list[str]:
    path = home / "marks.txt"
    return path.read_text().splitlines() if path.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("whole_tree", [False, True], ids=["main-process", "process-group"])
def test_kill_9_mid_run_then_restart(
    home: Path, env: dict[str, str], procs: list[subprocess.Popen[str]], whole_tree: bool
) -> None:
    """SIGKILL the standalone process alone (its workers die with it and report the attempt
    lost) or its whole process group (nobody reports: the next leader reclaims the silent
    attempt after worker.timeout)."""
    first = start(env, procs)
    repo = Repository(create_engine(f"sqlite:///{home / 'haflow.db'}"))

    def parsed() -> bool:
        try:
            return [d.dag_id for d in repo.dags.all()] == ["crash_dag"]
        except Exception:
            return False

    wait_for("the DAG to be parsed", parsed)
    subprocess.run(
        [*HAFLOW, "dags", "trigger", "crash_dag", "--run-id", "r1"],
        env=env,
        check=True,
        capture_output=True,
    )
    wait_for("attempt 1 to start", lambda: any(m.startswith("start 1") for m in marks(home)))
    task_pid = int(marks(home)[0].split()[2])

    if whole_tree:
        os.killpg(first.pid, signal.SIGKILL)
    else:
        first.send_signal(signal.SIGKILL)
    first.wait(10)
    wait_for("the orphaned attempt to die with its worker", lambda: not alive(task_pid), 5)

    second = start(env, procs)
    wait_for("run r1 to succeed", lambda: repo.runs.get("crash_dag", "r1").state == "success", 60)

    lines = [m.rsplit(" ", 1)[0] if m.startswith("start") else m for m in marks(home)]
    assert lines == ["start 1", "start 2", "end 2", "after 1"], marks(home)
    slow = repo.history.task_instance("crash_dag", "r1", "slow")
    attempts = repo.history.attempts(slow.id)
    assert [(a.attempt, a.state) for a in attempts] == [(1, "lost"), (2, "success")]
    reclaimed_by = "worker stopped heartbeating" if whole_tree else "worker stopped while"
    assert attempts[0].reason.startswith(reclaimed_by)
    claims = Counter(
        (e.task_id, e.attempt) for e in repo.history.events() if e.kind == "attempt.claimed"
    )
    assert claims == {("slow", 1): 1, ("slow", 2): 1, ("after", 1): 1}
    epochs = [e.epoch for e in repo.history.events(kinds=["leader.elected"])]
    assert epochs == [1, 2]

    runs = subprocess.run(
        [*HAFLOW, "dags", "list-runs", "crash_dag", "--output", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(runs.stdout)[0]["state"] == "success"

    second.send_signal(signal.SIGINT)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0, out
    assert "no attempt left running" in out
    repo.engine.dispose()
