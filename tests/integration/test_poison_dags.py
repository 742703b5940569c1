"""Bad DAG files beside a good one, on a real scheduler with its local executor and a real
metastore: a file that hangs, exits, crashes the interpreter, loops, allocates without end or
imports a missing module never stalls the leader nor fails another DAG's run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.core.clock import utcnow
from haflow.metastore.repository import Repository
from haflow.scheduler.service import SchedulerService
from tests.waiting import wait_for

GOOD = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("steady", start_date=datetime(2026, 1, 1)):
    BashTask("a", bash_command="echo a") >> BashTask("b", bash_command="echo b")
"""

POISON = {
    "slow.py": ("import time\ntime.sleep(100)\n", "import timed out after 3 s"),
    "exits.py": ("import os\nos._exit(3)\n", "exited with code 3 before reporting"),
    "segfault.py": ("import ctypes\nctypes.string_at(0)\n", "died of SIGSEGV"),
    "spins.py": ("while True:\n    pass\n", "import timed out after 3 s"),
    "hog.py": ("b = []\nwhile True:\n    b.append(bytearray(32 << 20))\n", "MemoryError"),
    "missing.py": ("import haflow_no_such_module\n", "No module named 'haflow_no_such_module'"),
}

LIVE_S = 10.0
"""How old a scheduler's heartbeat may be and still count as live (`haflow jobs check
--max-age`, the probes' default). A file imported in the loop would stall it for the whole
import: slow.py sleeps 100 s. The bound was 3 s once, a reading a loaded CI passed by 0.04 s
with two files spinning on the machine's two cores, which no guarantee names."""
NORMAL_RUN_S = 15.0
"""A two-task run of `echo`s takes about a second here; 15 s is far from any stall (the poison
files' own timeouts are 3 s each, six of them)."""


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[tuple[SchedulerService, Repository, Path]]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "good.py").write_text(GOOD)
    settings = load_settings(
        home=tmp_path,
        environ={
            "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
            "HAFLOW__CORE__DAGS_FOLDER": str(dags),
            "HAFLOW__CORE__PARALLELISM": "2",
            "HAFLOW__CORE__DAG_DIR_LIST_INTERVAL": "0.5",
            "HAFLOW__CORE__DAG_FILE_IMPORT_TIMEOUT": "3",
            "HAFLOW__CORE__DAG_FILE_MEMORY_LIMIT": "256",
            "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        },
    )
    service = build_scheduler(settings)
    thread = threading.Thread(target=service.run, name="scheduler", daemon=True)
    thread.start()
    try:
        yield service, service.repo, dags
    finally:
        service.stop_requested.set()
        thread.join(30)
        assert not thread.is_alive(), "the scheduler did not stop within 30 s"


def test_bad_files_never_stall_the_leader_nor_fail_another_dag(
    running: tuple[SchedulerService, Repository, Path],
) -> None:
    service, repo, dags = running
    wait_for("the good DAG to be parsed", lambda: [d.dag_id for d in repo.dags.all()] == ["steady"])
    wait_for("a leader", lambda: repo.leadership.current() is not None)
    epoch = repo.leadership.current().epoch  # type: ignore[union-attr]

    for name, (source, _) in POISON.items():
        (dags / name).write_text(source)
    triggered: list[str] = []
    stalest = 0.0
    deadline = time.monotonic() + 90
    while len(repo.dags.import_errors()) < len(POISON) or len(triggered) < 5:
        assert time.monotonic() < deadline, f"import errors so far: {repo.dags.import_errors()}"
        triggered.append(repo.runs.trigger("steady", {}, utcnow()).run_id)
        stalest = max(stalest, _heartbeat_age(repo, service.sid))
        time.sleep(1.0)

    # the leader never changed and kept its heartbeat fresh while the files were parsed
    assert repo.leadership.current().epoch == epoch  # type: ignore[union-attr]
    assert stalest < LIVE_S, f"the scheduler's heartbeat went {stalest:.1f} s stale"
    # every run of the good DAG succeeded in its normal time
    for run_id in triggered:
        wait_for(f"run {run_id}", lambda r=run_id: repo.runs.get("steady", r).state == "success")  # type: ignore[misc]
        run = repo.runs.get("steady", run_id)
        took = (run.ended_at - run.created_at).total_seconds()  # type: ignore[operator]
        assert took < NORMAL_RUN_S, f"run {run_id} took {took:.1f} s"
    # each bad file is an import error that names its cause
    errors = {Path(e.fileloc).name: e.message for e in repo.dags.import_errors()}
    assert set(errors) == set(POISON)
    for name, (_, cause) in POISON.items():
        assert cause in errors[name], f"{name}: {errors[name]}"
    # no run's events go back in time: started after triggered
    for run_id in triggered:
        events = {e.kind: e.ts for e in repo.history.events(dag_id="steady") if e.run_id == run_id}
        assert events["run.started"] >= events["run.triggered"], events


def _heartbeat_age(repo: Repository, sid: str) -> float:
    rows = [r for r in repo.members.schedulers() if r["id"] == sid]
    if not rows:
        return 0.0
    beat = rows[0]["heartbeat_at"]
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=utcnow().tzinfo)
    return float((utcnow() - beat).total_seconds())
