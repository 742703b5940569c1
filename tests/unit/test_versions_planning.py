"""Planning with code versions: each run with its own version's tasks, a run whose version is
not parsed here yet waits; which master may make a DAG active or inactive (`Presence`)."""

from __future__ import annotations

from datetime import UTC, datetime

from haflow.core.planner import DagSpec, Limits, RunSnap, TaskSpec, TISnap, dag_of, plan
from haflow.core.states import RunState, TaskState
from haflow.metastore.records import Presence

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
V1, V2 = "1" * 64, "2" * 64
NEW = DagSpec("d", {"a": TaskSpec("a"), "b": TaskSpec("b", frozenset({"a"}))}, code_hash=V2)
OLD_TASKS = {"a": TaskSpec("a")}  # v1 had no "b"


def _run(pk: int, code_hash: str | None, state: RunState = RunState.RUNNING) -> RunSnap:
    tis = {"a": TISnap(pk * 10, "a", TaskState.NONE)} if state is RunState.RUNNING else {}
    return RunSnap(pk, "d", state, tis, code_hash=code_hash)


def test_a_run_is_planned_with_its_own_versions_tasks() -> None:
    old = _run(1, V1)
    assert dag_of(old, {"d": NEW}, {("d", V1): OLD_TASKS}).tasks == OLD_TASKS  # type: ignore[union-attr]
    assert dag_of(_run(2, V2), {"d": NEW}, {}) is NEW
    assert dag_of(_run(3, None), {"d": NEW}, {}) is NEW  # made before versions were kept
    assert dag_of(old, {"d": NEW}, None) is NEW  # no versions given: the DAG's tasks now
    assert dag_of(old, {"d": NEW}, {}) is None  # its version not parsed here yet: it waits


def test_a_run_whose_version_is_unknown_waits_and_is_not_started() -> None:
    waiting, queued = _run(1, V1), _run(2, V1, RunState.QUEUED)
    d = plan({"d": NEW}, [waiting, queued], NOW, Limits(open_slots=10), versions={})
    assert d.to_queue == [] and d.start_runs == []
    known = {("d", V1): OLD_TASKS}
    d = plan({"d": NEW}, [waiting, queued], NOW, Limits(open_slots=10), versions=known)
    assert d.to_queue == [(10, 1)] and d.start_runs == [2]


def test_a_master_changes_presence_only_for_dags_it_had() -> None:
    p = Presence("m2", appeared=frozenset({"new"}), vanished=frozenset({"gone"}))
    assert p.may_change("new", False, V1) and p.may_change("gone", False, V1)
    assert not p.may_change("other", False, V1)  # added or removed on another master
    assert p.may_change("other", True, V1)  # its version now came from this master
    assert p.may_change("other", False, None)  # written before versions were kept
    assert Presence(whole=True).may_change("other", False, V1)
