"""One DAG's bad data set aside (haflow.core.isolation): decisions split by DAG whole, and a
broken DAG let go after its retry time or when its DAG changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from haflow.core.isolation import Broken, Quarantine, split_by_dag
from haflow.core.snapshot import BackfillSnap, Decisions, NewRun, RunSnap, TIChange, TISnap
from haflow.core.states import RunState, TaskState

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def _run(pk: int, dag_id: str, ti_id: int) -> RunSnap:
    return RunSnap(pk, dag_id, RunState.RUNNING, {"t": TISnap(ti_id, "t", TaskState.NONE)})


def test_decisions_split_by_dag_each_whole() -> None:
    runs = [_run(1, "a", 10), _run(2, "b", 20)]
    backfills = [BackfillSnap(7, "b", T0, T0, 1)]
    d = Decisions(
        new_runs=[NewRun("c", T0, T0, T0)],
        start_runs=[1],
        finish_runs=[(2, RunState.SUCCESS)],
        to_queue=[(10, 1)],
        changes=[TIChange(20, 1, TaskState.RUNNING, TaskState.SUCCESS)],
        republish=[(10, 1)],
        revisions={1: 3, 2: 4},
        finish_backfills=[7],
        capped=True,
    )
    parts = split_by_dag(d, runs, backfills)
    assert set(parts) == {"a", "b", "c"}
    assert parts["a"].start_runs == [1] and parts["a"].to_queue == [(10, 1)]
    assert parts["a"].republish == [(10, 1)] and parts["a"].revisions == {1: 3}
    assert parts["b"].finish_runs == [(2, RunState.SUCCESS)] and parts["b"].revisions == {2: 4}
    assert [c.ti_id for c in parts["b"].changes] == [20] and parts["b"].finish_backfills == [7]
    assert parts["c"].new_runs == d.new_runs and all(p.capped for p in parts.values())


def test_a_broken_dag_is_held_until_its_retry_time_or_a_new_parse() -> None:
    q = Quarantine(retry_s=60)
    q.add(Broken("a", "/dags/a.py", "value too long", T0, "f1"))
    q.add(Broken("b", "/dags/b.py", "value too long", T0, "f1"))
    assert q.held(T0 + timedelta(seconds=59), {"a": "f1", "b": "f1"}) == {"a", "b"}
    assert "DAG 'a' is not scheduled" in q.errors()[0][2] and q.errors()[0][0] == "/dags/a.py"
    assert q.held(T0 + timedelta(seconds=59), {"a": "f1", "b": "f2"}) == {"a"}  # b changed
    assert q.held(T0 + timedelta(seconds=60), {"a": "f1"}) == set()
