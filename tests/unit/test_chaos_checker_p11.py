"""P11 on hand-made histories: every failure in the event log reaches the receiver under one
key, however often it was sent; a missing, doubled or invented notification fails it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from haflow.chaos.checker import Status
from haflow.chaos.model import Delivery, Fault, History
from tests.fakes import M1, M2, NODES, Log, assert_fails, one, t


def p11_history() -> History:
    """Task t of run r fails at attempt 2 (written by worker1) and the run fails (written by
    the leader) around a leader kill at 10 s; each is delivered once, t's failure twice."""
    log = Log().elect(0, M1, 1)
    log.add(9, "ti.failed", "worker1", 1, dag_id="d", run_id="r", task_id="t", attempt=2)
    log.elect(10.5, M2, 2)
    log.add(11, "run.failed", M2, None, dag_id="d", run_id="r", detail=json.dumps({"revision": 0}))
    deliveries = (
        Delivery("k1", "ti.failed", "d", "r", "t", 2, None, t(9.5)),
        Delivery("k1", "ti.failed", "d", "r", "t", 2, None, t(11.2)),  # sent again: same key
        Delivery("k2", "run.failed", "d", "r", None, None, 0, t(11.1)),
    )
    faults = (Fault(t(10), "kill", "master1", {"signal": "KILL"}),)
    return History(events=tuple(log.events), deliveries=deliveries, faults=faults, nodes=NODES)


def test_p11_passes_with_one_key_per_failure_and_measures_the_delay() -> None:
    v = one(p11_history(), "P11")
    assert v.status == Status.PASS, v
    assert (
        "2 failures in the event log, 2 keys delivered, 1 deliveries repeated a key"
        in (v.evidence[0])
    )
    assert v.measures["notify_s"] == pytest.approx((0.1, 0.5))


def test_p11_fails_on_a_failure_never_notified_or_notified_under_two_keys() -> None:
    h = p11_history()
    missing = replace(h, deliveries=h.deliveries[2:])
    assert_fails(one(missing, "P11"), "ti.failed of d/r/t#2: delivered under 0 keys")
    twice = replace(h, deliveries=(*h.deliveries, replace(h.deliveries[2], key="k3")))
    assert_fails(one(twice, "P11"), "run.failed of d/r (revision 0): delivered under 2 keys")


def test_p11_fails_on_a_notification_of_an_event_that_did_not_happen() -> None:
    h = p11_history()
    ghost = Delivery("k9", "ti.failed", "d", "r", "t", 1, None, t(12))
    assert_fails(one(replace(h, deliveries=(*h.deliveries, ghost)), "P11"), "no such event")
    shared = replace(ghost, key="k1", attempt=2, task_id="u")
    assert_fails(one(replace(h, deliveries=(*h.deliveries, shared)), "P11"), "names 2 events")


def test_p11_without_a_fault_is_not_exercised() -> None:
    assert one(replace(p11_history(), faults=()), "P11").status == Status.NOT_EXERCISED
