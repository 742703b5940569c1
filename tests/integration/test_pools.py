"""Pools through the real scheduler, local executor and metastore: a pool of 2 never has more
than 2 of its task instances running at once (judged from the tasks' own records), across
DAGs; the leader's transaction refuses a plan that would over-commit a pool; the CLI and the
pools' rules for deleting."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from haflow.core.clock import utcnow
from haflow.core.planner import Decisions
from haflow.errors import ConcurrentChange, Conflict
from haflow.metastore.engine import create_engine
from haflow.metastore.records import DagRecord, TaskDef
from haflow.metastore.repository import Repository
from tests.daemons import HAFLOW
from tests.scheduler_threads import scheduler_thread
from tests.waiting import wait_for as _wait_for

wait_for = functools.partial(_wait_for, timeout=90.0)

DAG_FILE = """
from datetime import datetime
from haflow import DAG, BashTask

RECORD = {record!r}
WORK = (f'echo "start $(date +%s.%N)" >> {{RECORD}}; sleep 1; '
        f'echo "end $(date +%s.%N)" >> {{RECORD}}')

with DAG("pooled", start_date=datetime(2026, 1, 1)):
    for i in range(6):
        BashTask(f"t{{i}}", bash_command=WORK, pool="db")

with DAG("pooled_too", start_date=datetime(2026, 1, 1)):
    for i in range(2):
        BashTask(f"u{{i}}", bash_command=WORK, pool="db")
    BashTask("free", bash_command="echo free")
"""


def max_running(record: Path) -> int:
    """The most intervals open at once in the tasks' own start/end lines."""
    marks = []
    for line in record.read_text().splitlines():
        kind, ts = line.split()
        marks.append((float(ts), 1 if kind == "start" else -1))
    depth = peak = 0
    for _, step in sorted(marks, key=lambda m: (m[0], m[1])):  # an end before a start at a tie
        depth += step
        peak = max(peak, depth)
    return peak


def test_a_pool_of_two_never_runs_more_than_two_across_dags(tmp_path: Path, db_url: str) -> None:
    record = tmp_path / "record.txt"
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}
    created = subprocess.run(
        [*HAFLOW, "pools", "set", "db", "2", "-d", "the warehouse"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0 and "pool db: 2 slots" in created.stdout, created.stderr
    with scheduler_thread(
        tmp_path,
        db_url,
        {"pooled.py": DAG_FILE.format(record=str(record))},
        HAFLOW__CORE__PARALLELISM="6",
    ) as service:
        repo = service.repo
        wait_for("the DAGs to be parsed", lambda: len(repo.dags.all()) == 2)
        repo.runs.trigger("pooled", {}, utcnow(), run_id="r1")
        repo.runs.trigger("pooled_too", {}, utcnow(), run_id="r1")
        wait_for("two running in the pool", lambda: repo.pools.get("db").running == 2)
        with pytest.raises(Conflict, match=r"used by .* task instance"):
            repo.pools.delete("db", utcnow())
        listed = subprocess.run(
            [*HAFLOW, "pools", "list", "--output", "json"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        for dag_id in ("pooled", "pooled_too"):
            wait_for(f"{dag_id} to succeed", functools.partial(_succeeded, repo, dag_id))
        after = repo.pools.get("db")
    assert len(record.read_text().splitlines()) == 16  # 8 tasks, each a start and an end
    assert max_running(record) == 2
    pools = {p["name"]: p for p in json.loads(listed.stdout)}
    assert pools["db"]["slots"] == 2 and pools["db"]["description"] == "the warehouse"
    assert pools["default_pool"]["slots"] == -1  # no cap until one is set
    assert (after.running, after.queued, after.open) == (0, 0, 2)
    deleted = subprocess.run(
        [*HAFLOW, "pools", "delete", "db"], env=env, capture_output=True, text=True, timeout=60
    )
    assert deleted.returncode == 0, deleted.stderr


def _succeeded(repo: Repository, dag_id: str) -> bool:
    return repo.runs.get(dag_id, "r1").state == "success"


T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_the_leaders_transaction_refuses_to_over_commit_a_pool(db_url: str) -> None:
    """A plan made on a stale view (here: one that ignores the pool) is rolled back whole."""
    engine = create_engine(db_url)
    try:
        repo = Repository(engine, cluster="c1", actor="s1")
        repo.dags.sync([DagRecord("d", "/d.py", None, None, False, 16, [], "", "fp")], [], T0)
        repo.pools.set("db", 2, T0)
        epoch = repo.leadership.take("s1", "none", T0)
        defs = {"d": [TaskDef(f"t{i}", 0, 0.0, None, "default", pool="db") for i in range(3)]}
        run = repo.runs.trigger("d", {}, T0, run_id="r1")
        repo.scheduling.apply(Decisions(start_runs=[run.pk]), defs, epoch, T0)
        tis = repo.history.task_instances("d", "r1")
        two = Decisions(to_queue=[(t.id, 1) for t in tis[:2]], capped=True)
        assert len(repo.scheduling.apply(two, defs, epoch, T0).refs) == 2
        third = Decisions(to_queue=[(tis[2].id, 1)], capped=True)
        with pytest.raises(ConcurrentChange, match="pool 'db' would hold 3 slots in flight"):
            repo.scheduling.apply(third, defs, epoch, T0)
        states = [t.state for t in repo.history.task_instances("d", "r1")]
        assert states == ["queued", "queued", "none"]  # rolled back
        repo.pools.set("db", 3, T0)
        assert len(repo.scheduling.apply(third, defs, epoch, T0).refs) == 1
        assert [p.name for p in repo.pools.list()] == ["db", "default_pool"]
    finally:
        engine.dispose()


def test_the_overlap_judge_counts_intervals_open_at_once(tmp_path: Path) -> None:
    record = tmp_path / "r"
    lines = [("start", 0), ("start", 1), ("end", 2), ("start", 2), ("end", 3), ("end", 4)]
    record.write_text("".join(f"{k} {t}\n" for k, t in lines))
    assert max_running(record) == 2
