"""P14 on hand-made histories: the metastore's primary killed; what it acknowledged before is
still there, scheduling resumes within the bound of the standby's promotion, and every
execution the tasks recorded is an attempt the metastore knows."""

from __future__ import annotations

from dataclasses import replace

from haflow.chaos.checker import Status
from haflow.chaos.model import OBSERVE, Attempt, Fault, History, Run, TaskRecord
from tests.fakes import M1, M2, NODES, Log, assert_fails, one, t

ACK = {"events": [[1, 3]], "runs": [["x", "a"]], "attempts": [["x", "a", "t0", 1]]}


def p14_history(resume_at: float = 26.0) -> History:
    """m1 leads; the primary pg1 acknowledged events 1-3, run a and its attempt at 9 s, is
    killed at 10 s; pg2 is promoted at 30 s; m2 leads (a fenced write) at `resume_at` + 4."""
    log = Log().elect(0, M1, 1)
    log.add(1, "run.created", M1, 1, dag_id="x", run_id="a")
    log.add(2, "ti.queued", M1, 1, dag_id="x", run_id="a", task_id="t0", attempt=1)
    log.elect(resume_at + 4, M2, 2)
    faults = (
        Fault(t(9), OBSERVE, "pg1", {"what": "acknowledged", **ACK}),
        Fault(t(10), "kill", "pg1", {"signal": "KILL"}),
        Fault(t(30), OBSERVE, "pg2", {"what": "promoted", "from": "pg1"}),
    )
    return History(
        events=tuple(log.events),
        faults=faults,
        nodes={**NODES, "pg1": "patroni", "pg2": "patroni"},
        runs=(Run("x", "a", "manual", "success", t(1)),),
        attempts=(Attempt("x", "a", "t0", 1, "success", 1, "worker1", t(2)),),
        records=(TaskRecord("x", "a", "t0", 1, "worker1", "start", t(3)),),
    )


def test_p14_passes_and_measures_the_promotion_and_the_gap() -> None:
    v = one(p14_history(), "P14")
    assert v.status == Status.PASS, v
    assert v.measures["promotion_s"] == (20.0,)
    assert v.measures["scheduling_gap_s"] == (0.0,)
    assert v.measures["lost"] == (0.0,)


def test_p14_fails_when_scheduling_resumes_late() -> None:
    assert_fails(one(p14_history(resume_at=50), "P14"), "scheduling resumed 24.00 s after")


def test_p14_fails_when_an_acknowledged_row_is_gone() -> None:
    h = p14_history()
    h = replace(h, events=h.events[:1] + h.events[2:], runs=(), attempts=())
    assert_fails(one(h, "P14"), "event 2", "run x a", "attempt 1 of x a t0")


def test_p14_fails_when_a_task_ran_as_an_attempt_the_metastore_forgot() -> None:
    h = p14_history()
    extra = TaskRecord("x", "a", "t0", 2, "worker1", "start", t(40))
    assert_fails(one(replace(h, records=(*h.records, extra)), "P14"), "does not know")


def test_p14_fails_when_no_member_is_promoted() -> None:
    h = p14_history()
    assert_fails(one(replace(h, faults=h.faults[:2]), "P14"), "no member was promoted")


def test_p14_is_not_exercised_without_a_metastore_fault() -> None:
    h = p14_history()
    assert one(replace(h, faults=()), "P14").status == Status.NOT_EXERCISED
