"""P10 on hand-made histories: a DAG file that hangs at import, dropped into the shared folder,
moves no leader and delays no run triggered while it is there."""

from __future__ import annotations

from dataclasses import replace

import pytest

from haflow.chaos.checker import Status
from haflow.chaos.model import Fault, History, Run
from tests.fakes import M1, M2, NODES, Log, assert_fails, one, t


def p10_history(start_delay: float, failover_at: float | None = None) -> History:
    """poison.py dropped at 10 s, removed at 50 s; runs triggered at 12 s and 30 s, each
    started `start_delay` later; a failover at `failover_at`, if given."""
    faults = (
        Fault(t(10), "poison", "dags", {"file": "poison.py"}),
        Fault(t(50), "cure", "dags", {"file": "poison.py"}),
    )
    log = Log().elect(0, M1, 1)
    if failover_at is not None:
        log.elect(failover_at, M2, 2)
    for at, run_id in ((12, "r1"), (30, "r2")):
        log.add(at + start_delay, "run.started", M1, 1, dag_id="d", run_id=run_id)
    runs = (Run("d", "r1", "manual", "success", t(12)), Run("d", "r2", "manual", "success", t(30)))
    return History(events=tuple(log.events), faults=faults, nodes=NODES, runs=runs)


def test_p10_passes_and_measures_the_start_delays_while_the_file_is_parsed() -> None:
    v = one(p10_history(0.3), "P10")
    assert v.status == Status.PASS, v
    assert v.measures["poison_start_delay_s"] == pytest.approx((0.3, 0.3))
    assert "epoch 1 kept; 2 runs triggered meanwhile started within 0.300 s" in v.evidence[0]


def test_p10_fails_when_the_leader_stalls_on_the_file() -> None:
    """What happened before parsing left the loop: the leader blocked on the import."""
    assert_fails(one(p10_history(31.0), "P10"), "within 31.000 s (bound 5.0 s)")


def test_p10_fails_when_leadership_moves_while_the_file_is_there() -> None:
    assert_fails(one(p10_history(0.3, failover_at=25.0), "P10"), "leadership moved", "epoch 2")
    # a failover after the file was removed is not the file's doing
    assert one(p10_history(0.3, failover_at=55.0), "P10").status == Status.PASS


def test_p10_fails_when_nothing_was_triggered_or_a_run_never_started() -> None:
    h = p10_history(0.3)
    assert_fails(one(replace(h, runs=()), "P10"), "no run was triggered")
    never = replace(h, events=tuple(Log().elect(0, M1, 1).events))
    assert_fails(one(never, "P10"), "run d/r1 triggered meanwhile never started")


def test_p10_without_a_poisoned_file_is_not_exercised() -> None:
    h = replace(p10_history(0.3), faults=())
    assert one(h, "P10").status == Status.NOT_EXERCISED
