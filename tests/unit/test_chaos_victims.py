"""A fault lands where it matters, without Docker: the drill aims a worker fault at a worker
running an attempt of the drill's own runs at that moment (never at a stale row of a
deployment's past), a fault that struck after its attempt had ended fails its round, and a
scenario whose claimed property no fault put to the test fails its run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from haflow.chaos.checker import Status, Verdict
from haflow.chaos.cluster import ClusterError
from haflow.chaos.drill import Drill
from haflow.chaos.model import Fault
from haflow.chaos.scenario import Outcome, Scenario
from haflow.chaos.spec import NodeDef

T0 = datetime(2026, 12, 7, 3, 46, 50, tzinfo=UTC)


def attempt(ti_id: int, worker: str, started_s: float, state: str = "running", **kw: Any) -> Any:
    return SimpleNamespace(
        ti_id=ti_id,
        attempt=kw.get("n", 1),
        state=state,
        worker_id=worker,
        started_at=T0 + timedelta(seconds=started_s),
        ended_at=kw.get("ended_at"),
    )


class History:
    """The metastore's view: task instances per run, and attempts."""

    def __init__(self, tis: dict[tuple[str, str], list[int]], attempts: list[Any]) -> None:
        self.tis = tis
        self.rows = attempts

    def running_attempts(self, runs: list[tuple[str, str]]) -> list[Any]:
        mine = {ti for run in runs for ti in self.tis.get(run, [])}
        return [a for a in self.rows if a.state in ("queued", "running") and a.ti_id in mine]

    def attempts(self, ti_id: int) -> list[Any]:
        return [a for a in self.rows if a.ti_id == ti_id]


def drill_on(history: History, seed: int = 0) -> Drill:
    repo = SimpleNamespace(history=history)
    nodes = [
        NodeDef(n, role, (), "")
        for n, role in [("master1", "master"), ("worker1", "worker"), ("worker2", "worker")]
    ]
    cluster = SimpleNamespace(docker=None, repo=lambda: repo, nodes=lambda: nodes)
    drill = Drill(cluster, random.Random(seed), lambda _m: None)
    drill.triggered = [("chaos_long", "r1")]
    return drill


def test_the_victim_is_the_worker_running_the_drills_attempt_not_a_stale_row() -> None:
    # worker2's row is of a run before the drill (a deployment's past): it is never aimed at
    history = History(
        {("chaos_long", "r1"): [10, 11]},
        [attempt(3, "worker2", -30.0), attempt(10, "worker1", 1.0), attempt(11, "worker1", 2.0)],
    )
    for seed in range(10):
        worker, a = drill_on(history, seed).busy_worker(timeout_s=1)
        assert (worker, a.ti_id) == ("worker1", 11)  # the one started last: most left to lose


def test_no_busy_worker_within_the_bound_aborts_with_the_reason() -> None:
    history = History({("chaos_long", "r1"): [10]}, [attempt(10, "worker1", 1.0, state="queued")])
    with pytest.raises(ClusterError, match=r"timed out .* a worker of \['worker1', 'worker2'\]"):
        drill_on(history).busy_worker(timeout_s=0.3)


def test_a_fault_after_its_attempt_ended_did_not_land() -> None:
    fault = Fault(T0 + timedelta(seconds=6), "kill", "worker1", {})
    ended = attempt(10, "worker1", 1.0, state="success", ended_at=T0 + timedelta(seconds=5.9))
    drill = drill_on(History({("chaos_long", "r1"): [10]}, [ended]))
    with pytest.raises(ClusterError, match=r"kill of worker1 .* did not land"):
        drill.landed(fault, ended)
    running = attempt(10, "worker1", 1.0)
    drill_on(History({}, [running])).landed(fault, running)  # still running: it landed
    # reclaimed as lost 0.24 s after the kill (seen on the compose game day): its victim
    lost = attempt(10, "worker1", 1.0, state="lost", ended_at=T0 + timedelta(seconds=6.24))
    drill_on(History({}, [lost])).landed(fault, lost)


def verdicts(status: Status) -> list[Verdict]:
    return [Verdict("P1", "one writer", Status.PASS), Verdict("P3", "reclaimed", status)]


def test_a_claimed_property_left_untested_fails_the_run() -> None:
    sc = Scenario("worker-kill9", "x", ("P1", "P3"), lambda _d: None)
    out = Outcome(
        sc.name,
        1,
        verdicts(Status.NOT_EXERCISED),
        1.0,
        [],
        sc.unexercised(verdicts(Status.NOT_EXERCISED)),
    )
    assert out.unexercised == ["P3"] and not out.ok
    ok = verdicts(Status.PASS)
    assert Outcome(sc.name, 1, ok, 1.0, [], sc.unexercised(ok)).ok
    chance = Scenario("random-faults", "x", ("P1", "P3"), lambda _d: None, by_chance=("P3",))
    assert chance.unexercised(verdicts(Status.NOT_EXERCISED)) == []
