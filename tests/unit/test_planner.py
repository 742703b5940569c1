"""The pure planner: what to create, start, queue, settle, reclaim and finish given a snapshot."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from haflow.core.planner import (
    DagSpec,
    Limits,
    NewRun,
    RunSnap,
    TaskSpec,
    TIChange,
    TISnap,
    due_runs,
    plan,
    runs_to_start,
    supervise,
)
from haflow.core.states import FINISHED_TASK_STATES, RunState, TaskState, TriggerRule
from haflow.dag.schedule import parse_schedule

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits(open_slots=100)


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


@dataclass
class FakeSchedule:
    """Fires every `every`, records how it was asked."""

    fires: list[datetime]
    every: timedelta = timedelta(hours=1)
    calls: list[tuple[datetime, datetime | None, datetime, bool]] = field(default_factory=list)

    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]:
        self.calls.append((start_date, after, now, catchup))
        return list(self.fires)

    def data_interval_ending_at(self, fire: datetime) -> tuple[datetime, datetime]:
        return fire - self.every, fire

    def intervals_starting(
        self, start_date: datetime, first: datetime, last: datetime
    ) -> list[tuple[datetime, datetime]]:
        return [(f - self.every, f) for f in self.fires if first <= f - self.every <= last]


def chain_dag(dag_id: str = "d", *edges: tuple[str, str], **kw: object) -> DagSpec:
    """A DAG over tasks named in `edges` (upstream, downstream); a lone task is ("x", "")."""
    ups: dict[str, set[str]] = {}
    for up, down in edges:
        ups.setdefault(up, set())
        if down:
            ups.setdefault(down, set()).add(up)
    tasks = {t: TaskSpec(t, frozenset(u)) for t, u in ups.items()}
    return DagSpec(dag_id, tasks, **kw)  # type: ignore[arg-type]


def run_of(pk: int, state: RunState, dag_id: str = "d", **tis: TISnap) -> RunSnap:
    return RunSnap(pk, dag_id, state, dict(tis))


def ti(id: int, task_id: str, state: TaskState = TaskState.NONE, **kw: object) -> TISnap:
    return TISnap(id, task_id, state, **kw)  # type: ignore[arg-type]


AB = chain_dag("d", ("a", "b"))


# --- queueing in a running run ------------------------------------------------------------


def test_roots_are_queued_with_the_next_attempt() -> None:
    dag = chain_dag("d", ("a", "c"), ("b", "c"))
    run = run_of(
        1,
        RunState.RUNNING,
        a=ti(10, "a"),
        b=ti(11, "b", attempt=2),
        c=ti(12, "c"),
    )
    out = plan({"d": dag}, [run], NOW, LIMITS)
    assert sorted(out.to_queue) == [(10, 1), (11, 3)]
    assert out.changes == []
    assert out.finish_runs == []


def test_downstream_waits_for_upstream_success() -> None:
    for state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.UP_FOR_RETRY):
        run = run_of(
            1,
            RunState.RUNNING,
            a=ti(10, "a", state, attempt=1, next_try_at=NOW + secs(60)),
            b=ti(11, "b"),
        )
        out = plan({"d": AB}, [run], NOW, LIMITS)
        assert out.to_queue == [], state
        assert out.changes == [], state
        assert out.finish_runs == [], state


def test_downstream_queued_once_upstream_succeeded() -> None:
    run = run_of(1, RunState.RUNNING, a=ti(10, "a", TaskState.SUCCESS, attempt=1), b=ti(11, "b"))
    out = plan({"d": AB}, [run], NOW, LIMITS)
    assert out.to_queue == [(11, 1)]
    assert out.finish_runs == []


def test_upstream_failure_marks_downstream_upstream_failed_and_fails_the_run() -> None:
    run = run_of(1, RunState.RUNNING, a=ti(10, "a", TaskState.FAILED, attempt=1), b=ti(11, "b"))
    out = plan({"d": AB}, [run], NOW, LIMITS)
    assert out.to_queue == []
    assert out.changes == [TIChange(11, 0, TaskState.NONE, TaskState.UPSTREAM_FAILED)]
    assert out.finish_runs == [(1, RunState.FAILED)]


def test_skipped_upstream_skips_all_success_downstream() -> None:
    run = run_of(1, RunState.RUNNING, a=ti(10, "a", TaskState.SKIPPED), b=ti(11, "b"))
    out = plan({"d": AB}, [run], NOW, LIMITS)
    assert out.changes == [TIChange(11, 0, TaskState.NONE, TaskState.SKIPPED)]
    assert out.finish_runs == [(1, RunState.SUCCESS)]


def test_tasks_with_the_same_upstream_but_another_rule_get_their_own_verdict() -> None:
    """Verdicts are shared within a pass by trigger rule and upstream states, never across
    rules: of three tasks below a failed one, the all_success ones fail, the one_failed runs."""
    tasks = {
        "a": TaskSpec("a"),
        "b": TaskSpec("b", frozenset({"a"})),
        "alert": TaskSpec("alert", frozenset({"a"}), TriggerRule.ONE_FAILED),
        "c": TaskSpec("c", frozenset({"a"})),
    }
    run = run_of(
        1,
        RunState.RUNNING,
        a=ti(10, "a", TaskState.FAILED, attempt=1),
        b=ti(11, "b"),
        alert=ti(12, "alert"),
        c=ti(13, "c"),
    )
    out = plan({"d": DagSpec("d", tasks)}, [run], NOW, LIMITS)
    assert out.to_queue == [(12, 1)]
    assert sorted(c.ti_id for c in out.changes) == [11, 13]
    assert {c.state for c in out.changes} == {TaskState.UPSTREAM_FAILED}


def test_task_removed_from_the_dag_is_skipped() -> None:
    run = run_of(1, RunState.RUNNING, gone=ti(10, "gone"))
    out = plan({"d": AB}, [run], NOW, LIMITS)
    assert out.changes == [TIChange(10, 0, TaskState.NONE, TaskState.SKIPPED)]
    assert out.to_queue == []


def test_open_slots_limit_how_many_are_queued_across_runs() -> None:
    dag = chain_dag("d", ("a", ""), ("b", ""), ("c", ""))
    runs = [
        run_of(1, RunState.RUNNING, a=ti(10, "a"), b=ti(11, "b"), c=ti(12, "c")),
        run_of(2, RunState.RUNNING, a=ti(20, "a"), b=ti(21, "b"), c=ti(22, "c")),
    ]
    for slots in (0, 2, 4):
        out = plan({"d": dag}, runs, NOW, Limits(open_slots=slots))
        assert len(out.to_queue) == slots
        assert len(set(out.to_queue)) == slots


def test_paused_dag_queues_nothing_and_creates_no_runs() -> None:
    sched = FakeSchedule([NOW])
    dag = chain_dag("d", ("a", "b"), schedule=sched, start_date=NOW - secs(3600), is_paused=True)
    runs = [
        run_of(
            1,
            RunState.RUNNING,
            a=ti(10, "a", TaskState.FAILED),
            b=ti(11, "b"),
            c=ti(12, "a", TaskState.UP_FOR_RETRY, next_try_at=NOW - secs(1)),
        ),
        run_of(2, RunState.QUEUED),
    ]
    out = plan({"d": dag}, runs, NOW, LIMITS)
    assert out.new_runs == []
    assert out.start_runs == []
    assert out.to_queue == []
    assert out.changes == []


def test_paused_dag_still_republishes_stale_queued_attempts() -> None:
    dag = replace(AB, is_paused=True)
    run = run_of(
        1, RunState.RUNNING, a=ti(10, "a", TaskState.QUEUED, attempt=1, queued_at=NOW - secs(31))
    )
    out = plan({"d": dag}, [run], NOW, Limits(open_slots=10, queued_timeout_s=30))
    assert out.republish == [(10, 1)]


# --- starting and finishing runs --------------------------------------------------------


def test_queued_runs_promoted_oldest_first_up_to_max_active_runs() -> None:
    dag = replace(AB, max_active_runs=3)
    runs = [
        run_of(7, RunState.QUEUED),
        run_of(1, RunState.RUNNING),
        run_of(5, RunState.QUEUED),
        run_of(3, RunState.SUCCESS),
        run_of(6, RunState.QUEUED),
    ]
    assert runs_to_start({"d": dag}, runs) == [5, 6]
    assert plan({"d": dag}, runs, NOW, LIMITS).start_runs == [5, 6]


def test_max_active_runs_counted_per_dag() -> None:
    dags = {"d": replace(AB, max_active_runs=1), "e": replace(AB, dag_id="e", max_active_runs=1)}
    runs = [
        run_of(1, RunState.RUNNING, "d"),
        run_of(2, RunState.QUEUED, "d"),
        run_of(3, RunState.QUEUED, "e"),
        run_of(4, RunState.QUEUED, "e"),
        run_of(5, RunState.QUEUED, "unknown"),
    ]
    assert runs_to_start(dags, runs) == [3]


def test_queued_runs_of_paused_dag_are_never_promoted() -> None:
    dag = replace(AB, is_paused=True)
    assert runs_to_start({"d": dag}, [run_of(1, RunState.QUEUED)]) == []


def test_run_started_in_this_plan_is_not_advanced() -> None:
    # Its task instances are created when the plan is applied: an empty run must not "finish".
    out = plan({"d": AB}, [run_of(1, RunState.QUEUED)], NOW, LIMITS)
    assert out.start_runs == [1]
    assert out.finish_runs == []
    assert out.to_queue == []


@pytest.mark.parametrize(
    ("a", "b", "outcome"),
    [
        (TaskState.SUCCESS, TaskState.SUCCESS, RunState.SUCCESS),
        (TaskState.SUCCESS, TaskState.SKIPPED, RunState.SUCCESS),
        (TaskState.SUCCESS, TaskState.FAILED, RunState.FAILED),
        (TaskState.FAILED, TaskState.UPSTREAM_FAILED, RunState.FAILED),
    ],
)
def test_run_finished_when_all_task_instances_finished(
    a: TaskState, b: TaskState, outcome: RunState
) -> None:
    run = run_of(1, RunState.RUNNING, a=ti(10, "a", a), b=ti(11, "b", b))
    out = plan({"d": AB}, [run], NOW, LIMITS)
    assert out.finish_runs == [(1, outcome)]
    assert out.changes == []


def test_finished_runs_are_left_alone() -> None:
    run = run_of(1, RunState.SUCCESS, a=ti(10, "a"), b=ti(11, "b"))
    assert not plan({"d": AB}, [run], NOW, LIMITS)


# --- retries, reclaim, timeouts, republish ------------------------------------------------


def test_up_for_retry_requeued_only_once_due() -> None:
    def run_with(next_try_at: datetime | None) -> RunSnap:
        return run_of(
            1,
            RunState.RUNNING,
            a=ti(10, "a", TaskState.UP_FOR_RETRY, attempt=2, failures=1, next_try_at=next_try_at),
        )

    assert plan({"d": AB}, [run_with(NOW + secs(1))], NOW, LIMITS).to_queue == []
    assert plan({"d": AB}, [run_with(NOW)], NOW, LIMITS).to_queue == [(10, 3)]
    assert plan({"d": AB}, [run_with(NOW - secs(5))], NOW, LIMITS).to_queue == [(10, 3)]
    assert plan({"d": AB}, [run_with(None)], NOW, LIMITS).to_queue == [(10, 3)]


def running(id: int = 10, **kw: object) -> TISnap:
    base: dict[str, object] = {"attempt": 1, "started_at": NOW - secs(60)}
    base.update(kw)
    return ti(id, "a", TaskState.RUNNING, **base)


def test_silent_running_attempt_is_lost_without_using_a_retry() -> None:
    tis = running(failures=1, retries=1, retry_delay_s=300, heartbeat_at=NOW - secs(9))
    run = run_of(1, RunState.RUNNING, a=tis)
    out = plan({"d": AB}, [run], NOW, Limits(open_slots=5, worker_timeout_s=8))
    assert out.changes == [
        TIChange(
            10,
            1,
            TaskState.RUNNING,
            TaskState.UP_FOR_RETRY,
            failures=1,
            losses=1,
            next_try_at=NOW,
            attempt_state="lost",
            reason="worker stopped heartbeating (9.0 s)",
        )
    ]
    assert out.to_queue == []  # re-queued on the next tick, after the change is applied


def test_lost_attempt_uses_a_retry_when_configured() -> None:
    tis = running(failures=0, retries=1, retry_delay_s=300, heartbeat_at=NOW - secs(9))
    limits = Limits(open_slots=5, worker_timeout_s=8, reclaim_consumes_retry=True)
    [change] = supervise(run_of(1, RunState.RUNNING, a=tis), NOW, limits)
    assert change.attempt_state == "lost"
    assert (change.state, change.failures, change.next_try_at) == (
        TaskState.UP_FOR_RETRY,
        1,
        NOW + secs(300),
    )
    exhausted = replace(tis, failures=1)
    [change] = supervise(run_of(1, RunState.RUNNING, a=exhausted), NOW, limits)
    assert (change.state, change.failures, change.next_try_at) == (TaskState.FAILED, 2, None)


def test_recent_heartbeat_keeps_the_attempt() -> None:
    tis = running(started_at=NOW - secs(3600), heartbeat_at=NOW - secs(8))
    assert supervise(run_of(1, RunState.RUNNING, a=tis), NOW, Limits(5, worker_timeout_s=8)) == []


def test_started_at_stands_in_for_a_missing_heartbeat() -> None:
    tis = running(started_at=NOW - secs(9), heartbeat_at=None)
    [change] = supervise(run_of(1, RunState.RUNNING, a=tis), NOW, Limits(5, worker_timeout_s=8))
    assert change.attempt_state == "lost"


def test_overrunning_attempt_is_timed_out_after_the_grace() -> None:
    limits = Limits(open_slots=5, worker_timeout_s=8, timeout_grace_s=5)
    base = running(timeout_s=60, retries=0, heartbeat_at=NOW - secs(1))
    within = replace(base, started_at=NOW - secs(65))
    assert supervise(run_of(1, RunState.RUNNING, a=within), NOW, limits) == []
    over = replace(base, started_at=NOW - secs(66))
    out = plan({"d": AB}, [run_of(1, RunState.RUNNING, a=over)], NOW, limits)
    assert out.changes == [
        TIChange(
            10,
            1,
            TaskState.RUNNING,
            TaskState.FAILED,
            failures=1,
            next_try_at=None,
            attempt_state="timed_out",
            reason="execution timeout",
        )
    ]


def test_timed_out_attempt_with_retries_left_is_retried_after_delay() -> None:
    tis = running(
        timeout_s=10, retries=3, retry_delay_s=20, started_at=NOW - secs(16), heartbeat_at=NOW
    )
    [change] = supervise(run_of(1, RunState.RUNNING, a=tis), NOW, Limits(5, timeout_grace_s=5))
    assert (change.state, change.failures, change.next_try_at, change.attempt_state) == (
        TaskState.UP_FOR_RETRY,
        1,
        NOW + secs(20),
        "timed_out",
    )


def test_stale_queued_attempt_is_republished() -> None:
    limits = Limits(open_slots=5, queued_timeout_s=30)
    fresh = ti(10, "a", TaskState.QUEUED, attempt=2, queued_at=NOW - secs(30))
    stale = ti(11, "b", TaskState.QUEUED, attempt=1, queued_at=NOW - secs(31))
    run = run_of(1, RunState.RUNNING, a=fresh, b=stale)
    out = plan({"d": AB}, [run], NOW, limits)
    assert out.republish == [(11, 1)]
    assert out.to_queue == []
    assert out.changes == []


# --- scheduled runs ---------------------------------------------------------------------


def test_due_runs_carry_the_data_interval() -> None:
    sched = FakeSchedule([NOW - secs(3600), NOW])
    start = NOW - secs(86400)
    dag = replace(AB, schedule=sched, start_date=start, catchup=True, last_fire_at=NOW - secs(7200))
    out = plan({"d": dag}, [], NOW, LIMITS)
    assert out.new_runs == [
        NewRun("d", NOW - secs(3600), NOW - secs(7200), NOW - secs(3600)),
        NewRun("d", NOW, NOW - secs(3600), NOW),
    ]
    assert sched.calls == [(start, NOW - secs(7200), NOW, True)]


def test_no_due_runs_without_schedule_or_start_date() -> None:
    sched = FakeSchedule([NOW])
    assert due_runs(replace(AB, schedule=None, start_date=NOW), NOW) == []
    assert due_runs(replace(AB, schedule=sched, start_date=None), NOW) == []
    assert sched.calls == []


CRON = parse_schedule("*/5 * * * *", dag_id="d", fileloc=None)
START = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def test_cron_first_run_without_catchup_is_the_latest_interval() -> None:
    dag = replace(AB, schedule=CRON, start_date=START)
    assert plan({"d": dag}, [], at(12), LIMITS).new_runs == [NewRun("d", at(10), at(5), at(10))]


def test_cron_nothing_due_before_the_first_interval_ends() -> None:
    dag = replace(AB, schedule=CRON, start_date=START)
    assert due_runs(dag, at(4)) == []


def test_cron_with_catchup_creates_every_missed_interval() -> None:
    dag = replace(AB, schedule=CRON, start_date=START, catchup=True)
    assert due_runs(dag, at(12)) == [
        NewRun("d", at(5), at(0), at(5)),
        NewRun("d", at(10), at(5), at(10)),
    ]
    later = replace(dag, last_fire_at=at(10))
    assert due_runs(later, at(27)) == [
        NewRun("d", at(15), at(10), at(15)),
        NewRun("d", at(20), at(15), at(20)),
        NewRun("d", at(25), at(20), at(25)),
    ]


def test_cron_after_last_fire_waits_for_the_next_one() -> None:
    dag = replace(AB, schedule=CRON, start_date=START, last_fire_at=at(10))
    assert due_runs(dag, at(14)) == []
    assert due_runs(dag, at(15)) == [NewRun("d", at(15), at(10), at(15))]
    assert due_runs(dag, at(27)) == [NewRun("d", at(25), at(20), at(25))]


# --- property: all_success never queued before its upstreams succeeded -------------------

_STATES = [
    TaskState.NONE,
    TaskState.QUEUED,
    TaskState.RUNNING,
    *sorted(FINISHED_TASK_STATES),
]


def _random_case(rng: random.Random) -> tuple[DagSpec, RunSnap]:
    n = rng.randint(1, 7)
    names = [f"t{i}" for i in range(n)]
    tasks = {}
    for i, name in enumerate(names):  # edges only go from lower to higher index: acyclic
        ups = frozenset(u for u in names[:i] if rng.random() < 0.4)
        rule = rng.choice(list(TriggerRule))
        tasks[name] = TaskSpec(name, ups, rule)
    tis = {
        name: ti(i, name, rng.choice(_STATES), attempt=rng.randint(0, 2))
        for i, name in enumerate(names)
    }
    return DagSpec("d", tasks), RunSnap(1, "d", RunState.RUNNING, tis)


def test_property_all_success_never_queued_before_upstreams_succeed() -> None:
    rng = random.Random(20240101)
    checked = 0
    for _ in range(4000):
        dag, run = _random_case(rng)
        out = plan({"d": dag}, [run], NOW, Limits(open_slots=rng.randint(0, 8)))
        by_id = {t.id: t for t in run.tis.values()}
        for ti_id, attempt in out.to_queue:
            queued = by_id[ti_id]
            assert attempt == queued.attempt + 1
            assert queued.state is TaskState.NONE
            spec = dag.tasks[queued.task_id]
            if spec.trigger_rule is TriggerRule.ALL_SUCCESS:
                checked += 1
                ups = [run.tis[u].state for u in spec.upstream]
                assert all(s is TaskState.SUCCESS for s in ups), (dag, run, out)
        changed = {c.ti_id for c in out.changes}
        assert not changed & {t for t, _ in out.to_queue}
        finished = {t.id for t in run.tis.values() if t.state in FINISHED_TASK_STATES}
        assert not changed & finished
    assert checked > 50  # the generator does exercise the property


def test_lost_attempts_fail_the_task_instance_at_the_loss_cap() -> None:
    """A task that keeps killing its worker is not retried forever ([worker] max_losses)."""
    from datetime import timedelta as _td

    from haflow.core.planner import DagSpec as _Dag
    from haflow.core.planner import Limits as _Limits
    from haflow.core.planner import RunSnap as _Run
    from haflow.core.planner import TISnap as _TI
    from haflow.core.planner import plan as _plan
    from haflow.core.states import RunState as _RS
    from haflow.core.states import TaskState as _TS

    now = datetime(2026, 1, 1, tzinfo=UTC)
    old = now - _td(seconds=60)
    dags = {"d": _Dag("d", {})}

    def change(losses: int):  # type: ignore[no-untyped-def]
        ti = _TI(
            1, "t", _TS.RUNNING, attempt=losses + 1, losses=losses, started_at=old, heartbeat_at=old
        )
        out = _plan(
            dags,
            [_Run(1, "d", _RS.RUNNING, {"t": ti})],
            now,
            _Limits(open_slots=1, worker_timeout_s=8, max_losses=3),
        )
        return out.changes[0]

    assert (change(0).state, change(0).losses) == (_TS.UP_FOR_RETRY, 1)
    assert (change(1).state, change(1).losses) == (_TS.UP_FOR_RETRY, 2)
    capped = change(2)
    assert (capped.state, capped.losses, capped.attempt_state) == (_TS.FAILED, 3, "lost")
    assert "max_losses" in capped.reason


def test_a_vanished_zookeeper_node_shortens_the_wait_but_never_skips_it() -> None:
    """The hint brings the reclaim forward to the self-fence point plus the margin (6 + 1 s),
    judged on the metastore's clock; a fresh heartbeat keeps the attempt whatever the hint."""
    from haflow.core.planner import DagSpec as _Dag
    from haflow.core.planner import Limits as _Limits
    from haflow.core.planner import RunSnap as _Run
    from haflow.core.planner import TISnap as _TI
    from haflow.core.planner import plan as _plan
    from haflow.core.states import RunState as _RS
    from haflow.core.states import TaskState as _TS

    now = datetime(2026, 1, 1, tzinfo=UTC)
    dags = {"d": _Dag("d", {})}

    def changes(silent_s: float, gone: str):  # type: ignore[no-untyped-def]
        beat = now - secs(silent_s)
        ti = _TI(1, "t", _TS.RUNNING, attempt=1, started_at=beat, heartbeat_at=beat, worker_id="w1")
        limits = _Limits(open_slots=1, gone_workers=frozenset({gone}), metastore_now=now)
        return _plan(dags, [_Run(1, "d", _RS.RUNNING, {"t": ti})], now, limits).changes

    assert changes(0.5, "w1") == []  # node gone, heartbeat fresh: alive, cut off ZooKeeper
    assert changes(6.9, "w1") == []  # not yet past its self-fence point plus the margin
    assert changes(7.5, "w2") == []  # another worker's node: the full timeout applies
    [hinted] = changes(7.1, "w1")
    assert (hinted.state, hinted.attempt_state) == (_TS.UP_FOR_RETRY, "lost")
    assert hinted.reason.startswith("worker's ZooKeeper session ended")
    [timed] = changes(8.1, "w2")
    assert timed.reason.startswith("worker stopped heartbeating")


def test_silence_is_judged_on_the_metastore_clock_not_the_leaders() -> None:
    """A leader whose own clock runs 30 s ahead reclaims nothing the metastore sees alive."""
    beat = NOW - secs(1)
    tis = running(started_at=beat, heartbeat_at=beat, worker_id="w1")
    run = run_of(1, RunState.RUNNING, a=tis)
    ahead = NOW + secs(30)
    assert supervise(run, ahead, Limits(5, metastore_now=NOW)) == []
    assert supervise(run, NOW, Limits(5, metastore_now=NOW + secs(9)))  # the metastore's 9 s


def test_republishing_backs_off_as_the_attempt_keeps_waiting() -> None:
    from datetime import timedelta as _td

    from haflow.core.planner import TISnap as _TI
    from haflow.core.reclamation import stale_queued as _stale
    from haflow.core.states import TaskState as _TS

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def stale(published_after_s: float, now_s: float) -> bool:
        ti = _TI(
            1,
            "t",
            _TS.QUEUED,
            attempt=1,
            first_queued_at=t0,
            queued_at=t0 + _td(seconds=published_after_s),
        )
        return _stale(ti, t0 + _td(seconds=now_s), 30.0)

    assert not stale(0, 30) and stale(0, 31)  # first republish after the timeout
    assert not stale(30, 60) and stale(30, 60.5)  # then after as long again (30 s)
    assert not stale(120, 239) and stale(120, 241)  # published at 120 s: waits 120 s more


# --- depends_on_past ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("past", "queued"),
    [
        ({}, True),  # no run before, or the task was not in it
        ({"a": TaskState.SUCCESS}, True),
        ({"a": TaskState.SKIPPED}, True),
        ({"a": TaskState.RUNNING}, False),
        ({"a": TaskState.FAILED}, False),
        ({"a": TaskState.UPSTREAM_FAILED}, False),
        ({"a": TaskState.NONE}, False),
    ],
)
def test_a_depends_on_past_task_waits_for_its_success_in_the_run_before(
    past: dict[str, TaskState], queued: bool
) -> None:
    dag = DagSpec("d", {"a": TaskSpec("a", depends_on_past=True), "b": TaskSpec("b")})
    run = RunSnap(1, "d", RunState.RUNNING, {"a": ti(1, "a"), "b": ti(2, "b")}, past=past)
    out = plan({"d": dag}, [run], NOW, LIMITS)
    assert ((1, 1) in out.to_queue) is queued
    assert (2, 1) in out.to_queue  # b does not depend on the past
    assert not out.finish_runs  # waiting is not an outcome


def test_a_retry_of_a_depends_on_past_task_does_not_wait_again() -> None:
    dag = DagSpec("d", {"a": TaskSpec("a", depends_on_past=True)})
    tis = {"a": ti(1, "a", TaskState.UP_FOR_RETRY, attempt=1)}
    run = RunSnap(1, "d", RunState.RUNNING, tis, past={"a": TaskState.FAILED})
    assert plan({"d": dag}, [run], NOW, LIMITS).to_queue == [(1, 2)]


# --- pools and concurrency limits -----------------------------------------------------------


def pooled(id: int, task_id: str, state: TaskState = TaskState.NONE, **kw: object) -> TISnap:
    return ti(id, task_id, state, pool=kw.pop("pool", "db"), **kw)


def flat_dag(*task_ids: str, **kw: object) -> DagSpec:
    return DagSpec("d", {t: TaskSpec(t) for t in task_ids}, **kw)  # type: ignore[arg-type]


def test_a_pool_queues_no_more_than_its_open_slots_counting_every_run() -> None:
    limits = Limits(open_slots=100, pools={"db": 3, "default_pool": 128})
    busy = run_of(1, RunState.RUNNING, a=pooled(1, "a", TaskState.RUNNING))
    tis = {t: pooled(10 + i, t) for i, t in enumerate("abcd")}
    waiting = RunSnap(2, "d", RunState.RUNNING, tis)
    out = plan({"d": flat_dag("a", "b", "c", "d")}, [busy, waiting], NOW, limits)
    assert out.to_queue == [(10, 1), (11, 1)]  # 1 running + 2 = the pool's 3 slots
    assert out.capped  # the queueing transaction checks the pool again
    free = RunSnap(3, "d", RunState.RUNNING, {"a": ti(20, "a")})  # in default_pool, no cap
    uncapped = plan({"d": flat_dag("a")}, [free], NOW, Limits(100, pools={"default_pool": -1}))
    assert uncapped.to_queue == [(20, 1)] and not uncapped.capped


def test_pool_slots_count_per_task_and_a_task_that_fits_later_waits() -> None:
    limits = Limits(open_slots=100, pools={"db": 3, "default_pool": 128})
    run = run_of(
        1,
        RunState.RUNNING,
        big=pooled(1, "big", pool_slots=2),
        big2=pooled(2, "big2", pool_slots=2),
        small=pooled(3, "small"),
    )
    out = plan({"d": flat_dag("big", "big2", "small")}, [run], NOW, limits)
    assert out.to_queue == [(1, 1), (3, 1)]  # big2 would make 5 of 3
    assert not out.changes


def test_a_task_no_pool_can_hold_fails_saying_why() -> None:
    limits = Limits(open_slots=100, pools={"db": 2, "default_pool": 128})
    run = run_of(
        1,
        RunState.RUNNING,
        ghost=pooled(1, "ghost", pool="nope"),
        huge=pooled(2, "huge", pool_slots=3),
    )
    out = plan({"d": flat_dag("ghost", "huge")}, [run], NOW, limits)
    assert out.to_queue == []
    reasons = {c.ti_id: (c.state, c.reason) for c in out.changes}
    assert reasons[1][0] is TaskState.FAILED and "pool 'nope' does not exist" in reasons[1][1]
    assert reasons[2][0] is TaskState.FAILED and "needs 3 slots of pool 'db'" in reasons[2][1]


def test_max_active_tasks_and_max_active_tis_per_dag_count_across_runs() -> None:
    dag = DagSpec(
        "d",
        {"a": TaskSpec("a", max_active_tis_per_dag=1), "b": TaskSpec("b")},
        max_active_tasks=3,
    )
    runs = [
        run_of(1, RunState.RUNNING, a=ti(1, "a", TaskState.RUNNING), b=ti(2, "b")),
        run_of(2, RunState.RUNNING, a=ti(3, "a"), b=ti(4, "b")),
        run_of(3, RunState.RUNNING, a=ti(5, "a"), b=ti(6, "b")),
    ]
    out = plan({"d": dag}, runs, NOW, LIMITS)
    # a is in flight once already: no other a; the DAG holds 3 at most: two b's join it
    assert out.to_queue == [(2, 1), (4, 1)]


# --- backfills ------------------------------------------------------------------------------


def test_a_backfill_creates_the_missing_ended_intervals_within_its_cap() -> None:
    from haflow.core.snapshot import BackfillSnap

    hourly = DagSpec(
        "d", {}, schedule=parse_schedule("@hourly", dag_id="d", fileloc=None),
        start_date=NOW - secs(10 * 3600), last_fire_at=NOW,  # the schedule has nothing due
    )  # fmt: skip
    hour = secs(3600)
    b = BackfillSnap(
        7, "d", NOW - 5 * hour, NOW + 5 * hour, max_active_runs=2,
        existing=frozenset({NOW - 4 * hour}), active=0,
    )  # fmt: skip
    out = plan({"d": hourly}, [], NOW, LIMITS, [b])
    made = [(r.interval_start, r.interval_end, r.backfill_id) for r in out.new_runs]
    # [-5h, -4h) has its run; [-4h, -3h) and [-3h, -2h) are next; nothing not yet ended
    assert made == [(NOW - 4 * hour, NOW - 3 * hour, 7), (NOW - 3 * hour, NOW - 2 * hour, 7)]
    assert not out.finish_backfills
    full = BackfillSnap(7, "d", NOW - 5 * hour, NOW + 5 * hour, 2, frozenset(), active=2)
    assert plan({"d": hourly}, [], NOW, LIMITS, [full]).new_runs == []
    every = frozenset(NOW - k * hour for k in range(0, 5))
    done = BackfillSnap(7, "d", NOW - 5 * hour, NOW + 5 * hour, 2, every, active=0)
    assert plan({"d": hourly}, [], NOW, LIMITS, [done]).finish_backfills == [7]
    still = BackfillSnap(7, "d", NOW - 5 * hour, NOW + 5 * hour, 2, every, active=1)
    assert plan({"d": hourly}, [], NOW, LIMITS, [still]).finish_backfills == []


# --- one DAG's data never stops the plan of the others --------------------------------------


class RaisingSchedule(FakeSchedule):
    """A schedule whose arithmetic fails, as one past the calendar's end does."""

    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]:
        raise OverflowError("date value out of range")


def test_a_dag_whose_planning_raises_is_left_out_and_named() -> None:
    start = NOW - secs(7200)
    bad = chain_dag("bad", ("a", ""), schedule=RaisingSchedule([]), start_date=start)
    good = chain_dag("good", ("a", ""), schedule=FakeSchedule([NOW]), start_date=start)
    runs = [
        run_of(1, RunState.RUNNING, "bad", a=ti(10, "a")),
        run_of(2, RunState.RUNNING, "good", a=ti(20, "a")),
        run_of(3, RunState.QUEUED, "bad"),
    ]
    out = plan({"bad": bad, "good": good}, runs, NOW, LIMITS)
    assert out.broken == {"bad": "planning it failed: OverflowError: date value out of range"}
    assert [n.dag_id for n in out.new_runs] == ["good"]
    assert out.to_queue == [(20, 1)]  # nothing of bad's runs, though they could go on
    assert out.start_runs == [] and 1 not in out.revisions and 2 in out.revisions


def test_a_run_whose_planning_raises_takes_back_what_was_decided_for_it() -> None:
    """A failure half-way through a run's tasks: the part decided before it is undone."""

    class Exploding(dict[str, TISnap]):
        def items(self) -> Iterator[tuple[str, TISnap]]:  # type: ignore[override]
            yield from super().items()
            raise ValueError("a value no rule expects")

    run = RunSnap(1, "d", RunState.RUNNING, Exploding(a=ti(10, "a")))  # a queued, then raises
    other = run_of(2, RunState.RUNNING, "e", a=ti(20, "a"))
    out = plan({"d": AB, "e": chain_dag("e", ("a", ""))}, [run, other], NOW, LIMITS)
    assert set(out.broken) == {"d"}
    assert out.to_queue == [(20, 1)] and out.changes == [] and out.finish_runs == []
