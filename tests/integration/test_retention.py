"""Retention on each metastore: `db clean` deletes only what is over and older than the
cutoff, in bounded batches, with what hangs off a run; `dags delete` refuses a DAG with runs
in flight unless forced; the leader's pass prunes while it leads and stops when it does not."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine

from haflow.core.clock import utcnow
from haflow.dag.bundle import Bundle
from haflow.errors import InvalidRequest
from haflow.metastore import models as m
from haflow.metastore.records import DagCode, DagRecord
from haflow.metastore.repository import Repository
from haflow.scheduler.retention import RetentionConfig, RetentionPass
from tests.daemons import HAFLOW

NOW = utcnow()
OLD = NOW - timedelta(days=40)


def _code(text: str) -> DagCode:
    b = Bundle("d.py", (("d.py", text.encode()),))
    return DagCode(b.hash, b.entry, b.size, b.pack())


V_OLD, V_KEPT, V_NOW = _code("old = 1\n"), _code("kept = 1\n"), _code("now = 1\n")


def _run(
    engine: Engine,
    dag_id: str,
    run_id: str,
    state: str,
    ended: object,
    code_hash: str | None = None,
) -> int:
    """A run with two task instances, an attempt and a log line each."""
    with engine.begin() as conn:
        pk = conn.execute(
            insert(m.DagRun).values(
                dag_id=dag_id,
                run_id=run_id,
                run_type="manual",
                state=state,
                conf="{}",
                created_at=OLD,
                ended_at=ended,
                code_hash=code_hash,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        for task in ("a", "b"):
            ti = conn.execute(
                insert(m.TaskInstance).values(
                    run_pk=pk, dag_id=dag_id, task_id=task, state="success", attempt=1
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(m.TaskAttempt).values(
                    ti_id=ti, attempt=1, state="success", epoch=1, queued_at=OLD
                )
            )
            conn.execute(insert(m.TaskLog).values(ti_id=ti, attempt=1, ts=OLD, data="x\n"))
    return int(pk)


@pytest.fixture
def seeded(engine: Engine) -> Repository:
    repo = Repository(engine, actor="test")
    record = DagRecord("d", "/dags/d.py", None, None, False, 16, [], "", "f")
    for code, when in ((V_OLD, OLD), (V_KEPT, OLD), (V_NOW, NOW)):
        versioned = replace(record, code_hash=code.hash)
        repo.dags.sync([versioned], [], when, code={code.hash: code})
    for i in range(7):
        _run(engine, "d", f"old{i}", "success" if i % 2 else "failed", OLD, V_OLD.hash)
    _run(engine, "d", "recent", "success", NOW, V_KEPT.hash)
    _run(engine, "d", "running", "running", None)
    with engine.begin() as conn:
        conn.execute(delete(m.Event))  # the syncs' dag.version events: only the 30 below count
        conn.execute(
            insert(m.Event),
            [
                {"ts": OLD if i < 25 else NOW, "kind": "x", "actor": "t", "detail": ""}
                for i in range(30)
            ],
        )
        conn.execute(insert(m.LoginFailure).values(address="1.2.3.4", username="u", ts=OLD))
    return repo


def _count(engine: Engine, table: type[m.Base]) -> int:
    with engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_clean_deletes_what_is_over_and_old_in_batches(seeded: Repository, engine: Engine) -> None:
    cutoff = NOW - timedelta(days=30)
    assert seeded.retention.count("runs", cutoff) == 7
    assert seeded.retention.count("events", cutoff) == 25
    seen: list[tuple[str, int, int]] = []
    deleted = seeded.retention.clean(
        cutoff, batch=10, progress=lambda t, done, total: seen.append((t, done, total))
    )
    assert deleted == {
        "runs": 7,
        "versions": 1,  # only old runs used it: the version of a run kept stays, as does now's
        "events": 25,
        "notifications": 0,
        "logins": 1,
        "sessions": 0,
    }
    assert [v.code_hash for v in seeded.dags.versions("d")] == [V_NOW.hash, V_KEPT.hash]
    assert ("runs", 1, 7) in seen and ("events", 10, 25) in seen  # a run per batch (10 // 10)
    runs = {r.run_id for r in seeded.runs.find(limit=100)}
    assert runs == {"recent", "running"}
    assert _count(engine, m.TaskInstance) == 4  # the two runs' own, the rest cascaded away
    assert _count(engine, m.TaskAttempt) == 4 and _count(engine, m.TaskLog) == 4
    assert _count(engine, m.Event) == 5
    assert seeded.retention.clean(cutoff) == dict.fromkeys(deleted, 0)  # nothing left
    with pytest.raises(InvalidRequest, match="unknown table 'dags'"):
        seeded.retention.clean(cutoff, ["events", "dags"])
    assert _count(engine, m.Event) == 5  # refused before anything was deleted


def test_a_dag_with_runs_in_flight_is_deleted_only_when_forced(
    seeded: Repository, engine: Engine
) -> None:
    with pytest.raises(InvalidRequest, match="1 queued or running run"):
        seeded.retention.delete_dag("d", NOW)
    assert seeded.dags.get("d")
    assert seeded.retention.delete_dag("d", NOW, force=True) == 9
    assert seeded.runs.find(limit=100) == []
    assert [d.dag_id for d in seeded.dags.all(active_only=False)] == []
    assert _count(engine, m.DagVersion) == 0  # its code stays until retention: no one uses it
    (event,) = seeded.history.events(kinds=["dag.deleted"])
    assert '"runs": 9' in event.detail and '"forced": true' in event.detail


def test_the_leaders_pass_prunes_while_it_leads(seeded: Repository) -> None:
    part = RetentionPass(
        seeded, RetentionConfig(older_than_days=30, tables=("runs", "events"), pause_s=0)
    )
    assert part.run_once() == {}  # a pass begun without leadership deletes nothing
    part.elected(1, "database", NOW)
    assert part.run_once() == {"runs": 7, "events": 25}
    part.stepped_down(1, "elector")
    assert part.epoch is None


def test_the_cli_cleans_and_deletes(seeded: Repository, db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "HAFLOW_HOME": str(tmp_path), "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url}

    def haflow(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*HAFLOW, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        return done

    dry = haflow("db", "clean", "--older-than", "30d", "--dry-run").stdout
    assert "runs: 7 older than" in dry and "events: 25 older than" in dry
    assert len(seeded.runs.find(limit=100)) == 9
    done = haflow("db", "clean", "--older-than", "30d", "--tables", "runs,events")
    assert "runs: 7 deleted, events: 25 deleted" in done.stdout
    assert "events: 25/25 deleted" in done.stderr
    bad = haflow("db", "clean", "--older-than", "soon", code=2)
    assert "give an age such as 30d" in bad.stderr
    refused = haflow("dags", "delete", "d", "--yes", code=1)
    assert "queued or running" in refused.stderr
    assert "DAG d deleted with 2 run(s)" in haflow("dags", "delete", "d", "--yes", "--force").stdout
