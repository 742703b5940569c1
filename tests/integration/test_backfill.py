"""Backfill through the CLI and a real scheduler, on every metastore: a range overlapping the
schedule's own run gets one run per interval, progress is shown, `--reset-existing` runs the
range again, `--dry-run` creates nothing."""

from __future__ import annotations

import functools
import os
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=90.0)

DAG_FILE = """
from datetime import datetime
from haflow import DAG, BashTask

with DAG("bf", schedule="@hourly", start_date=datetime(2026, 1, 1), catchup=False):
    # a second's work: `--reset-existing --wait` must wait for the runs it cleared to end
    BashTask("work", bash_command='echo "$HAFLOW_DATA_INTERVAL_START"; sleep 2')
"""


def test_a_backfill_over_the_schedules_run_makes_one_run_per_interval(
    tmp_path: Path, db_url: str
) -> None:
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first, last = (hour - timedelta(hours=3)).isoformat(), (hour + timedelta(hours=1)).isoformat()
    span = ["dags", "backfill", "bf", "-s", first, "-e", last]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HAFLOW, *args], env=env, capture_output=True, text=True, timeout=120
        )

    with scheduler_thread(tmp_path, db_url, {"bf.py": DAG_FILE}) as service:
        repo = service.repo
        wait_for("the schedule's run", lambda: len(repo.runs.find("bf")) == 1)
        wait_for("it to end", lambda: _ended(repo) == 1)
        dry = cli(*span, "--dry-run")
        made = cli(*span, "--max-active-runs", "2", "--wait")
        runs = repo.runs.find("bf", limit=100)
        again = cli(*span, "--reset-existing", "--wait")
        after = repo.runs.find("bf", limit=100)
        tries = [repo.history.task_instance("bf", r.run_id, "work").attempt for r in after]
        listed = repo.backfills.list("bf")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("\n") == 3 and dry.stdout.count("no run yet") == 2
    assert "3 interval(s); nothing was created" in dry.stderr
    assert made.returncode == 0, made.stderr
    first_id = listed[-1].id  # ids go on from earlier tests' backfills (a server's sequence)
    assert f"backfill {first_id} of bf: 3 interval(s)" in made.stdout
    assert "3/3 interval(s) ended (3 succeeded, 0 failed), 0 in flight" in made.stderr
    ends = Counter(r.data_interval_end for r in runs)
    assert len(ends) == 3 and set(ends.values()) == {1}  # one run per interval
    assert Counter(r.run_type for r in runs) == {"backfill": 2, "scheduled": 1}
    assert {r.state for r in runs} == {"success"}
    assert again.returncode == 0, again.stderr
    assert len(after) == 3 and {r.state for r in after} == {"success"}
    assert tries == [2, 2, 2]  # each interval ran again, in its own run
    assert [(b.state, b.runs_created, b.succeeded) for b in listed] == [
        ("done", 0, 3),
        ("done", 2, 3),
    ]


def _ended(repo: Repository) -> int:
    return sum(1 for r in repo.runs.find("bf") if r.state in ("success", "failed"))
