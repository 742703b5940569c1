"""The chaos checker on hand-made histories: for each property P1..P9 a history that keeps it
(PASS), one that breaks it (FAIL, with the evidence naming what broke) and, where it applies,
one that does not put it to the test (NOT_EXERCISED). The checker is shown able to fail."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from haflow.chaos.checker import Bounds, Status, check_p1
from haflow.chaos.model import Attempt, Fault, History, Request, Run, TaskRecord
from haflow.chaos.report import as_json, as_table, merge, summary
from haflow.chaos.scenario import Outcome
from tests.fakes import M1, M2, NODES, Log, assert_fails, one, t

# -- P1 -------------------------------------------------------------------------------------


def p1_history() -> Log:
    return (
        Log()
        .elect(0, M1, 1)
        .add(1, "run.created", M1, 1, dag_id="d", run_id="r")
        .elect(10, M2, 2)
        .add(11, "ti.queued", M2, 2)
        .add(12, "attempt.claimed", "worker1", 1)  # a worker's claim carries the message's epoch
        .add(30, "leader.fenced_out", M1, 1)
    )


def test_p1_passes_on_one_writer_per_epoch() -> None:
    v = one(History(events=tuple(p1_history().events)), "P1")
    assert v.status == Status.PASS, v
    assert "2 epochs" in v.evidence[0]


def test_p1_fails_on_a_second_writer_in_an_epoch() -> None:
    log = p1_history().add(13, "ti.queued", M1, 2)
    assert_fails(one(History(events=tuple(log.events)), "P1"), "by master1:11:aaaaaa", "epoch 2")


def test_p1_fails_on_a_stale_write_after_a_newer_epoch() -> None:
    log = p1_history().add(14, "run.created", M1, 1)
    assert_fails(one(History(events=tuple(log.events)), "P1"), "after epoch 2 was taken")


def test_p1_fails_when_an_epoch_goes_backwards_or_repeats() -> None:
    log = p1_history().elect(40, M1, 2)
    assert_fails(check_p1(History(events=tuple(log.events)), Bounds()), "epoch 2 elected")


def test_p1_fails_on_an_attempt_under_an_unknown_epoch() -> None:
    att = Attempt("d", "r", "a", 1, "success", 7, "worker1", t(1))
    h = History(events=tuple(p1_history().events), attempts=(att,))
    assert_fails(one(h, "P1"), "never elected")


def test_p1_not_exercised_without_elections() -> None:
    assert one(History(), "P1").status == Status.NOT_EXERCISED


# -- P2 -------------------------------------------------------------------------------------


def p2_history(takeover: float, signal: str = "KILL") -> History:
    log = Log().elect(0, M1, 1).elect(10 + takeover, M2, 2)
    fault = Fault(t(10), "kill", "master1", {"signal": signal})
    return History(events=tuple(log.events), faults=(fault,), nodes=NODES)


def test_p2_passes_and_measures_the_takeover() -> None:
    v = one(p2_history(1.5), "P2")
    assert v.status == Status.PASS, v
    assert v.measures["takeover_kill_s"] == (1.5,)


def test_p2_fails_on_a_slow_takeover() -> None:
    assert_fails(one(p2_history(6.0), "P2"), "after 6.000 s (bound 5.0 s)")


def test_p2_sigterm_bound_is_one_second() -> None:
    assert one(p2_history(0.4, "TERM"), "P2").status == Status.PASS
    assert_fails(one(p2_history(1.4, "TERM"), "P2"), "SIGTERM", "bound 1.0 s")


def test_p2_fails_when_nobody_takes_over() -> None:
    h = replace(p2_history(1.0), events=(Log().elect(0, M1, 1).events[0],))
    assert_fails(one(h, "P2"), "no new leader")


def test_p2_killing_a_standby_does_not_exercise_it() -> None:
    h = replace(p2_history(1.0), faults=(Fault(t(10), "kill", "master2"),))
    assert one(h, "P2").status == Status.NOT_EXERCISED


# -- P3 -------------------------------------------------------------------------------------


def p3_history(requeue_after: float, state: str = "lost", successor: bool = True) -> History:
    victim = Attempt("d", "r", "a", 1, state, 1, "worker1", t(0), t(1), t(18))
    attempts = [victim]
    if successor:
        attempts.append(Attempt("d", "r", "a", 2, "success", 1, "worker2", t(5 + requeue_after)))
    return History(
        events=tuple(Log().elect(0, M1, 1).events),
        attempts=tuple(attempts),
        faults=(Fault(t(5), "kill", "worker1"),),
        nodes=NODES,
    )


def test_p3_passes_and_measures_the_reclaim() -> None:
    v = one(p3_history(8.2), "P3")
    assert v.status == Status.PASS, v
    assert v.measures["requeue_s"] == (8.2,)
    assert v.measures["reclaim_s"] == (13.0,)


def test_p3_fails_on_a_late_requeue() -> None:
    assert_fails(one(p3_history(12.0), "P3"), "queued 12.000 s later (bound 10.0 s)")


def test_p3_fails_when_never_requeued_or_not_lost() -> None:
    assert_fails(one(p3_history(1.0, successor=False), "P3"), "never re-queued")
    assert_fails(one(p3_history(1.0, state="running"), "P3"), "not reclaimed")


def test_p3_idle_worker_does_not_exercise_it() -> None:
    h = replace(p3_history(1.0), faults=(Fault(t(30), "kill", "worker1"),))
    assert one(h, "P3").status == Status.NOT_EXERCISED


def test_p3_an_attempt_lost_right_after_the_kill_was_its_victim() -> None:
    """Reclaimed 0.24 s after the kill (seen on the compose game day): the kill's victim, not
    an attempt that ended on its own; one that succeeded as soon is still not mid-task."""
    lost = Attempt("d", "r", "a", 1, "lost", 1, "worker1", t(0), t(1), t(5.24))
    successor = Attempt("d", "r", "a", 2, "success", 1, "worker2", t(5.3))
    h = replace(p3_history(1.0), attempts=(lost, successor))
    v = one(h, "P3")
    assert v.status == Status.PASS and v.measures["reclaim_s"] == (0.24,), v
    done = replace(lost, state="success")
    assert one(replace(h, attempts=(done,)), "P3").status == Status.NOT_EXERCISED


# -- P4 -------------------------------------------------------------------------------------


def test_p4_every_run_terminal() -> None:
    runs = (
        Run("d", "r1", "manual", "success", t(0)),
        Run("d", "r2", "manual", "success", t(0)),
    )
    assert one(History(runs=runs), "P4").status == Status.PASS
    stuck = (*runs, Run("d", "r3", "manual", "running", t(0)))
    assert_fails(one(History(runs=stuck), "P4"), "d/r3", "'running'")


# -- P5 -------------------------------------------------------------------------------------


def rec(attempt: int, kind: str, at: float, node: str = "worker1") -> TaskRecord:
    return TaskRecord("d", "r", "a", attempt, node, kind, t(at))


GOOD_RECORDS = (
    rec(1, "start", 1),
    rec(1, "tick", 1.2),
    rec(1, "tick", 1.4),  # killed here: no end
    rec(2, "start", 9, "worker2"),
    rec(2, "end", 11, "worker2"),
)


def test_p5_passes_on_sequential_attempts() -> None:
    assert one(History(records=GOOD_RECORDS), "P5").status == Status.PASS


def test_p5_fails_on_overlapping_attempts() -> None:
    records = (*GOOD_RECORDS, rec(1, "tick", 9.5))  # the old attempt still ran at 9.5 s
    assert_fails(one(History(records=records), "P5"), "attempt 2 started", "while attempt 1 ran")


def test_p5_fails_on_an_attempt_run_twice() -> None:
    records = (*GOOD_RECORDS, rec(2, "start", 20, "worker1"))
    assert_fails(one(History(records=records), "P5"), "started 2 times")


def test_p5_fails_on_duplicate_rows_or_claims() -> None:
    a = Attempt("d", "r", "a", 1, "success", 1, "worker1", t(0))
    assert_fails(one(History(records=GOOD_RECORDS, attempts=(a, a)), "P5"), "has 2 rows")
    log = Log()
    for at in (1, 2):
        log.add(at, "attempt.claimed", "worker1", 1, dag_id="d", run_id="r", task_id="a", attempt=1)
    h = History(records=GOOD_RECORDS, events=tuple(log.events))
    assert_fails(one(h, "P5"), "claimed 2 times")


# -- P6 -------------------------------------------------------------------------------------


def p6_history(start_delay: float, lost: bool = False) -> History:
    """The ensemble down from 10 s to 40 s; a run triggered at 15 s, started `start_delay`
    later; an attempt ended meanwhile, lost or a success."""
    faults = (
        *(Fault(t(10 + i * 0.1), "kill", f"zk{i + 1}") for i in range(3)),
        Fault(t(40), "restart", "zk1"),
    )
    log = (
        Log()
        .elect(0, M1, 1)
        .add(15 + start_delay, "run.started", M1, None, dag_id="d", run_id="r2")
    )
    runs = (Run("d", "r2", "manual", "success", t(15)),)
    attempt = Attempt(
        "d",
        "r1",
        "a",
        1,
        "lost" if lost else "success",
        1,
        "worker1",
        t(9),
        t(9),
        t(20),
        "worker stopped heartbeating (8.1 s)" if lost else "",
    )
    return History(
        events=tuple(log.events), faults=faults, nodes=NODES, runs=runs, attempts=(attempt,)
    )


def test_p6_passes_and_measures_the_start_delay_during_the_outage() -> None:
    v = one(p6_history(0.5), "P6")
    assert v.status == Status.PASS, v
    assert v.measures["fallback_s"] == pytest.approx((0.5,))


def test_p6_fails_on_a_late_start_none_or_a_lost_attempt() -> None:
    assert_fails(one(p6_history(16.0), "P6"), "bound 15.0 s")
    h = replace(p6_history(1.0), events=tuple(Log().elect(0, M1, 1).events))
    assert_fails(one(h, "P6"), "never started")
    assert_fails(one(p6_history(1.0, lost=True), "P6"), "attempt 1 of d/r1/a lost")
    nothing = replace(p6_history(1.0), runs=())
    assert_fails(one(nothing, "P6"), "no run was triggered during the outage")


def test_p6_two_members_down_does_not_exercise_it() -> None:
    h = replace(p6_history(7.0), faults=p6_history(7.0).faults[:2])
    assert one(h, "P6").status == Status.NOT_EXERCISED


# -- P7 -------------------------------------------------------------------------------------


def p7_log() -> Log:
    return (
        Log()
        .elect(0, M1, 1)
        .add(1, "run.created", M1, 1)
        .elect(15, M2, 2)
        .add(16, "ti.queued", M2, 2)
        .add(30.5, "leader.fenced_out", M1, 1)
    )


P7_FAULTS = (Fault(t(5), "pause", "master1"), Fault(t(30), "resume", "master1"))


def test_p7_passes_when_the_resumed_leader_is_fenced() -> None:
    v = one(History(events=tuple(p7_log().events), faults=P7_FAULTS, nodes=NODES), "P7")
    assert v.status == Status.PASS, v
    assert v.measures["step_down_s"] == (0.5,)


def test_p7_fails_when_a_write_of_the_paused_leader_lands() -> None:
    log = p7_log().add(30.2, "ti.queued", M1, 1)
    h = History(events=tuple(log.events), faults=P7_FAULTS, nodes=NODES)
    assert_fails(one(h, "P7"), "its ti.queued", "was accepted")


def test_p7_fails_when_the_resumed_leader_never_steps_down() -> None:
    events = tuple(e for e in p7_log().events if e.kind != "leader.fenced_out")
    assert_fails(one(History(events=events, faults=P7_FAULTS, nodes=NODES), "P7"), "fenced_out")


def test_p7_short_pause_does_not_exercise_it() -> None:
    faults = (Fault(t(5), "pause", "master1"), Fault(t(6), "resume", "master1"))
    h = History(events=tuple(p7_log().events), faults=faults, nodes=NODES)
    assert one(h, "P7").status == Status.NOT_EXERCISED


# -- P8 -------------------------------------------------------------------------------------


def requests(failing_at: tuple[float, ...]) -> tuple[Request, ...]:
    return tuple(Request(t(x / 10), (x / 10) not in failing_at, 200) for x in range(0, 200))


def test_p8_passes_when_failures_stop_within_the_health_check() -> None:
    h = History(
        requests=requests((10.0, 11.5)), faults=(Fault(t(10), "kill", "master2"),), nodes=NODES
    )
    v = one(h, "P8")
    assert v.status == Status.PASS, v
    assert v.measures["lb_failing_s"] == (1.5,)


def test_p8_fails_on_a_request_failing_after_the_drop() -> None:
    h = History(
        requests=requests((10.0, 13.5)), faults=(Fault(t(10), "kill", "master2"),), nodes=NODES
    )
    assert_fails(one(h, "P8"), "request at 12:00:13.500000 failed")


def test_p8_counts_a_request_in_flight_at_the_kill_as_the_kill_s() -> None:
    sent_before = Request(t(9.95), False, 502, "Bad Gateway", took_s=0.08)
    answered_before = Request(t(9.9), False, 502, "Bad Gateway", took_s=0.05)
    kill = (Fault(t(10), "kill", "master2"),)
    h = History(requests=(sent_before,), faults=kill, nodes=NODES)
    v = one(h, "P8")
    assert v.status == Status.PASS, v
    assert v.measures["lb_failing_s"] == (0.0,)
    h = History(requests=(answered_before,), faults=kill, nodes=NODES)
    assert_fails(one(h, "P8"), "request at 12:00:09.900000 failed")


def test_p8_fails_on_a_failure_without_a_fault() -> None:
    assert_fails(one(History(requests=requests((5.0,)), nodes=NODES), "P8"), "failed")


# -- P9 -------------------------------------------------------------------------------------


def minute(n: int) -> datetime:
    return t(60 * n)


def cron_runs(delays: dict[int, float]) -> tuple[Run, ...]:
    return tuple(
        Run(
            "cron",
            f"scheduled__{n}",
            "scheduled",
            "success",
            minute(n) + timedelta(seconds=d),
            minute(n),
            minute(n - 1),
            minute(n),
        )
        for n, d in delays.items()
    )


def p9_history(delays: dict[int, float], dues: range = range(1, 6)) -> History:
    log = Log().elect(0, M1, 1).elect(182.5, M2, 2)  # master1 killed at 179 s
    return History(
        events=tuple(log.events),
        runs=cron_runs(delays),
        faults=(Fault(t(179), "kill", "master1"),),
        nodes=NODES,
        due={"cron": tuple(minute(n) for n in dues)},
    )


def test_p9_passes_with_takeover_slack_across_a_failover() -> None:
    # due at 180 s while no leader: allowed 2.5 s takeover + 1 s
    v = one(p9_history({1: 0.2, 2: 0.3, 3: 3.0, 4: 0.1, 5: 0.2}), "P9")
    assert v.status == Status.PASS, v
    assert max(v.measures["cron_delay_s"]) == 3.0


def test_p9_fails_on_a_missed_run() -> None:
    assert_fails(one(p9_history({1: 0.2, 2: 0.3, 4: 0.1, 5: 0.2}), "P9"), "missed")


def test_p9_fails_on_a_late_run_while_a_leader_was_up() -> None:
    assert_fails(one(p9_history({1: 0.2, 2: 1.6, 3: 3.0, 4: 0.1, 5: 0.2}), "P9"), "after 1.600 s")


def test_p9_fails_on_a_run_beyond_the_takeover_slack() -> None:
    assert_fails(
        one(p9_history({1: 0.2, 2: 0.3, 3: 3.6, 4: 0.1, 5: 0.2}), "P9"), "allowed 0 to 3.500"
    )


def test_p9_fails_on_a_data_interval_run_twice_or_an_extra_run() -> None:
    h = p9_history({1: 0.2, 2: 0.3, 3: 3.0, 4: 0.1, 5: 0.2})
    twin = replace(
        h.runs[1], run_id="manual-twin", scheduled_fire_at=minute(2) + timedelta(seconds=7)
    )
    assert_fails(one(replace(h, runs=(*h.runs, twin)), "P9"), "ran 2 times", "not due")


# -- the report -----------------------------------------------------------------------------


def test_report_merges_repeats_and_summarises() -> None:
    a = one(p2_history(1.0), "P2")
    b = one(p2_history(6.0), "P2")
    (merged,) = merge([[a], [b]])
    assert merged.status == Status.FAIL
    assert merged.measures["takeover_kill_s"] == (1.0, 6.0)
    assert summary([1.0, 2.0, 3.0, 4.0])["p50"] == 2.0
    table = as_table("leader-kill", [merged])
    assert "P2   FAIL" in table and "takeover_kill_s" in table
    ok = Outcome("leader-kill", 2, [merged], 1.0).ok  # the run's own verdict, as the CLI gives it
    data = json.loads(as_json("leader-kill", [merged], ok, {"repeats": 2}))
    assert data["ok"] is False
    assert data["properties"]["P2"]["measures"]["takeover_kill_s"]["max"] == 6.0


def test_p5_sees_an_overlap_with_an_attempt_before_the_previous_one() -> None:
    records = (
        rec(1, "start", 1),
        rec(1, "tick", 30),  # attempt 1 still running at 30 s
        rec(2, "start", 5),
        rec(2, "end", 6),
        rec(3, "start", 10),
        rec(3, "end", 12),
    )
    assert_fails(one(History(records=records), "P5"), "attempt 3 started", "while attempt 1 ran")


def test_p7_fails_when_nobody_takes_over_during_a_long_pause() -> None:
    log = Log().elect(0, M1, 1).add(1, "run.created", M1, 1)
    faults = (Fault(t(5), "pause", "master1"), Fault(t(35), "resume", "master1"))
    h = History(events=tuple(log.events), faults=faults, nodes=NODES)
    assert_fails(one(h, "P7"), "no takeover while paused for 30.0 s")


# -- P12 ------------------------------------------------------------------------------------


def pooled_history(*spans: tuple[str, float, float], slots: int = 2) -> History:
    """Task `name` ran from `start` to `end` (its own records), all in pool p of `slots`."""
    records, attempts = [], []
    for name, start, end in spans:
        records += [TaskRecord("d", "r", name, 1, "worker1", "start", t(start))]
        records += [TaskRecord("d", "r", name, 1, "worker1", "tick", t(end))]
        attempts.append(Attempt("d", "r", name, 1, "success", 1, "w", t(0), pool="p"))
    faults = (Fault(t(1), "kill", "master1"),)
    return History(
        attempts=tuple(attempts),
        records=tuple(records),
        faults=faults,
        pools={"p": slots, "default_pool": -1},
    )


def test_p12_passes_when_the_pool_never_holds_more_than_its_slots() -> None:
    # b ends as c starts: an end and a start at the same instant do not overlap
    v = one(pooled_history(("a", 0, 5), ("b", 0, 3), ("c", 3, 6)), "P12")
    assert v.status == Status.PASS and v.measures["pool_peak"] == (2.0,)


def test_p12_fails_naming_the_pool_and_when_it_was_over_committed() -> None:
    v = one(pooled_history(("a", 0, 5), ("b", 1, 6), ("c", 2, 3)), "P12")
    assert_fails(v, "pool 'p': 2 slots, at most 3", "d/r/c/1 began")


def test_p12_ignores_pools_without_a_cap_and_needs_a_fault() -> None:
    h = pooled_history(("a", 0, 5), ("b", 1, 6), ("c", 2, 3), slots=-1)
    assert one(h, "P12").status == Status.NOT_EXERCISED
    calm = replace(pooled_history(("a", 0, 5)), faults=())
    assert one(calm, "P12").status == Status.NOT_EXERCISED
