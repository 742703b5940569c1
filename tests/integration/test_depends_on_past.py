"""depends_on_past through the real scheduler and metastore: a task's first try waits until the
same task succeeded in the DAG's run before; a failure there holds the later runs' task until
it is marked (or cleared and succeeds), while their other tasks go on."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from haflow.core.clock import utcnow
from haflow.core.states import TaskState
from haflow.metastore.repository import Repository
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=60.0)

DAG_FILE = """
from datetime import datetime
from haflow import DAG, BashTask

with DAG("dop", schedule="@daily", start_date=datetime(2026, 1, 1),
         end_date=datetime(2026, 1, 4), catchup=True, max_active_runs=3):
    # fails in the first run only
    BashTask("step", depends_on_past=True,
             bash_command='test "$HAFLOW_DATA_INTERVAL_START" != "2026-01-01T00:00:00+00:00"')
    BashTask("free", bash_command="echo free")
"""


def test_a_failure_holds_the_next_runs_task_until_it_is_marked(tmp_path: Path, db_url: str) -> None:
    with scheduler_thread(tmp_path, db_url, {"dop.py": DAG_FILE}) as service:
        repo = service.repo
        wait_for("three runs", lambda: len(repo.runs.find("dop")) == 3)
        first, second, third = sorted(repo.runs.find("dop"), key=lambda r: r.pk)
        wait_for(
            "the first run to fail", lambda: repo.runs.get("dop", first.run_id).state == "failed"
        )
        wait_for("free to succeed everywhere", lambda: _states(repo, "free") == ["success"] * 3)
        time.sleep(2.0)  # 20 scheduler ticks: step must still wait in the later runs
        held = _states(repo, "step")
        running = [repo.runs.get("dop", r.run_id).state for r in (second, third)]
        repo.runs.mark_task("dop", first.run_id, "step", TaskState.SUCCESS, utcnow())
        wait_for("every run to succeed", lambda: _run_states(repo) == ["success"] * 3)
        starts = [
            repo.history.task_instance("dop", r.run_id, "step").started_at for r in (second, third)
        ]
    assert held == ["failed", "none", "none"]
    assert running == ["running", "running"]
    assert starts[0] is not None and starts[1] is not None and starts[0] < starts[1]


def _states(repo: Repository, task_id: str) -> list[str]:
    runs = sorted(repo.runs.find("dop"), key=lambda r: r.pk)
    return [repo.history.task_instance("dop", r.run_id, task_id).state for r in runs]


def _run_states(repo: Repository) -> list[str]:
    return [r.state for r in sorted(repo.runs.find("dop"), key=lambda r: r.pk)]
