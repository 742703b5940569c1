"""P13 on hand-made histories: a DAG's versions only move forward, each run has its DAG's
version at its creation (and that version's tasks), each task ran its run's version."""

from __future__ import annotations

import json
from dataclasses import replace

from haflow.chaos.checker import Status
from haflow.chaos.model import Attempt, Fault, History, Run, TaskRecord
from tests.fakes import M1, M2, NODES, Log, assert_fails, one, t

V1, V2 = "1" * 64, "2" * 64


def _version(log: Log, at: float, actor: str, epoch: int, h: str, tasks: int) -> None:
    detail = json.dumps({"code_hash": h, "tasks": tasks, "by": actor.split(":")[0]})
    log.add(at, "dag.version", actor, epoch, dag_id="x", detail=detail)


def _run(run_id: str, at: float, h: str, tasks: int) -> tuple[Run, list[Attempt], list[TaskRecord]]:
    run = Run("x", run_id, "manual", "success", t(at), code_hash=h)
    attempts, records = [], []
    for i in range(tasks):
        task = f"t{i}"
        attempts.append(Attempt("x", run_id, task, 1, "success", 1, "worker1", t(at)))
        records.append(TaskRecord("x", run_id, task, 1, "worker1", "start", t(at + 1), h))
    return run, attempts, records


def p13_history() -> History:
    """v1 (1 task) from m1; at 10 s v2 (2 tasks) deployed to m1 alone; m1 dies at 20 s and the
    stale m2 leads from 22 s; runs on v1 at 5 s, on v2 at 15 s and 30 s."""
    log = Log().elect(0, M1, 1)
    _version(log, 1, M1, 1, V1, 1)
    _version(log, 11, M1, 1, V2, 2)
    log.elect(22, M2, 2)
    faults = (
        Fault(t(10), "deploy", "master1", {"file": "x.py"}),
        Fault(t(20), "kill", "master1", {"signal": "KILL"}),
    )
    parts = [_run("a", 5, V1, 1), _run("b", 15, V2, 2), _run("c", 30, V2, 2)]
    return History(
        events=tuple(log.events),
        faults=faults,
        nodes=NODES,
        runs=tuple(p[0] for p in parts),
        attempts=tuple(a for p in parts for a in p[1]),
        records=tuple(r for p in parts for r in p[2]),
    )


def test_p13_passes_when_the_metastores_versions_run() -> None:
    v = one(p13_history(), "P13")
    assert v.status == Status.PASS, v
    assert "5 task start(s) judged, 2 version change(s)" in v.evidence[0]


def test_p13_fails_when_a_stale_master_takes_a_dag_back() -> None:
    h = p13_history()
    log = Log()
    log.events = list(h.events)
    _version(log, 25, M2, 2, V1, 1)
    assert_fails(one(replace(h, events=tuple(log.events)), "P13"), "went back to version 1111")


def test_p13_fails_when_a_run_gets_a_superseded_version() -> None:
    h = p13_history()
    runs = tuple(replace(r, code_hash=V1) if r.run_id == "c" else r for r in h.runs)
    assert_fails(one(replace(h, runs=runs), "P13"), "run x c (created", "has version 1111")


def test_p13_fails_when_a_task_ran_other_code_than_its_runs() -> None:
    h = p13_history()
    records = tuple(
        replace(r, code_hash=V1) if (r.run_id, r.task_id) == ("c", "t1") else r for r in h.records
    )
    assert_fails(one(replace(h, records=records), "P13"), "x c t1 attempt 1", "ran version 1111")


def test_p13_fails_when_a_run_had_another_versions_tasks() -> None:
    h = p13_history()
    attempts = tuple(a for a in h.attempts if (a.run_id, a.task_id) != ("c", "t1"))
    assert_fails(one(replace(h, attempts=attempts), "P13"), "run x c ran 1 task(s)", "has 2")


def test_p13_is_not_exercised_without_a_deploy_to_one_master() -> None:
    h = p13_history()
    v = one(replace(h, faults=h.faults[1:]), "P13")
    assert v.status == Status.NOT_EXERCISED, v
