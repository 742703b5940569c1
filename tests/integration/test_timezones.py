"""DAGs on a time zone's wall clock, through the real scheduler and metastore: catchup across
both daylight-saving changes of Europe/Berlin and America/New_York creates each interval's run
once, with the intervals the rule gives (docs/design.md section 10), stored in UTC, and the
tasks run with them."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, datetime
from pathlib import Path

from haflow.metastore.repository import Repository
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=90.0)

DAG_FILE = """
from datetime import datetime
from haflow import DAG, BashTask

SHOW = 'echo "$HAFLOW_DATA_INTERVAL_START $HAFLOW_DATA_INTERVAL_END"'

def local(dag_id, schedule, zone, start, end):
    with DAG(dag_id, schedule=schedule, timezone=zone, start_date=start, end_date=end,
             catchup=True, max_active_runs=8):
        BashTask("show", bash_command=SHOW)

def d(*args):
    return datetime(2026, *args)  # naive: the DAG's own timezone

local("berlin_spring", "30 2 * * *", "Europe/Berlin", d(3, 27), d(3, 31, 5))
local("berlin_fall", "30 2 * * *", "Europe/Berlin", d(10, 23), d(10, 27, 5))
local("berlin_hourly", "0 * * * *", "Europe/Berlin", d(3, 29), d(3, 29, 23, 30))
local("ny_spring", "0 2 * * *", "America/New_York", d(3, 6), d(3, 10, 5))
local("ny_fall", "30 1 * * *", "America/New_York", d(10, 30), d(11, 3, 5))
"""


def z(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def chain(*ends: datetime) -> list[tuple[datetime, datetime]]:
    return list(itertools.pairwise(ends))


EXPECTED = {
    # the 29th's 02:30 does not exist: its run ends at 03:00 CEST
    "berlin_spring": chain(z(3, 27, 1, 30), z(3, 28, 1, 30), z(3, 29, 1), z(3, 30, 0, 30),
                           z(3, 31, 0, 30)),
    # the 25th's 02:30 happens twice: its run ends at the first; the next interval is 25 h
    "berlin_fall": chain(z(10, 23, 0, 30), z(10, 24, 0, 30), z(10, 25, 0, 30), z(10, 26, 1, 30),
                         z(10, 27, 1, 30)),
    # 02:00 is skipped: 22 runs from 00:00 to 23:00 local (21:00 UTC), none doubled
    "berlin_hourly": chain(z(3, 28, 23), z(3, 29, 0), *[z(3, 29, h) for h in range(1, 22)]),
    "ny_spring": chain(z(3, 6, 7), z(3, 7, 7), z(3, 8, 7), z(3, 9, 6), z(3, 10, 6)),
    "ny_fall": chain(z(10, 30, 5, 30), z(10, 31, 5, 30), z(11, 1, 5, 30), z(11, 2, 6, 30),
                     z(11, 3, 6, 30)),
}  # fmt: skip


def test_catchup_across_the_changes_creates_each_interval_once(tmp_path: Path, db_url: str) -> None:
    with scheduler_thread(
        tmp_path, db_url, {"local_time.py": DAG_FILE}, HAFLOW__CORE__PARALLELISM="4"
    ) as service:
        repo = service.repo
        wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == len(EXPECTED))
        total = sum(len(v) for v in EXPECTED.values())
        wait_for(f"{total} runs to finish", lambda: _finished(repo) == total)
        runs = {d: sorted(repo.runs.find(d, limit=100), key=lambda r: r.run_id) for d in EXPECTED}
        logs = {
            d: [
                repo.history.logs(repo.history.task_instance(d, r.run_id, "show").id, 1) for r in rs
            ]
            for d, rs in runs.items()
        }
        zones = {d.dag_id: d.timezone for d in repo.dags.all()}

    for dag_id, expected in EXPECTED.items():
        got = sorted((r.data_interval_start, r.data_interval_end) for r in runs[dag_id])
        assert got == expected, dag_id
        assert {r.state for r in runs[dag_id]} == {"success"}, dag_id
        shown = sorted(log.split() for log in logs[dag_id])
        assert shown == [[a.isoformat(), b.isoformat()] for a, b in expected], dag_id
    assert zones["ny_fall"] == "America/New_York"


def _finished(repo: Repository) -> int:
    return sum(1 for d in EXPECTED for r in repo.runs.find(d, limit=100) if r.state == "success")
