"""The pure planner: given a snapshot of the metastore and `now`, decide what changes next.

It never does IO and never reads a clock; the scheduling loop hands it a snapshot, applies the
returned decisions in one fenced transaction, then publishes the queued attempts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from haflow.core.rules import Verdict, after_failure, evaluate_trigger, run_outcome
from haflow.core.states import RunState, TaskState, TriggerRule


class ScheduleLike(Protocol):
    def due_fires(
        self, start_date: datetime, after: datetime | None, now: datetime, catchup: bool
    ) -> list[datetime]: ...

    def data_interval_ending_at(self, fire: datetime) -> tuple[datetime, datetime]: ...


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    upstream: frozenset[str] = frozenset()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS


@dataclass(frozen=True)
class DagSpec:
    """What the planner needs of a parsed DAG plus its row in the metastore."""

    dag_id: str
    tasks: Mapping[str, TaskSpec]
    schedule: ScheduleLike | None = None
    start_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 16
    is_paused: bool = False
    last_fire_at: datetime | None = None


@dataclass(frozen=True)
class TISnap:
    id: int
    task_id: str
    state: TaskState
    attempt: int = 0
    failures: int = 0
    losses: int = 0  # attempts lost with their worker
    retries: int = 0
    retry_delay_s: float = 0.0
    next_try_at: datetime | None = None
    timeout_s: float | None = None
    started_at: datetime | None = None  # of the running attempt
    heartbeat_at: datetime | None = None  # of the running attempt
    queued_at: datetime | None = None  # when the queued attempt was last published
    first_queued_at: datetime | None = None  # when the queued attempt was committed
    worker_id: str | None = None  # who claimed the running attempt


@dataclass(frozen=True)
class RunSnap:
    pk: int
    dag_id: str
    state: RunState
    tis: Mapping[str, TISnap]


@dataclass(frozen=True)
class Limits:
    open_slots: int  # how many more attempts the executor may hold
    worker_timeout_s: float = 8.0  # a running attempt silent this long is lost
    queued_timeout_s: float = 30.0  # a queued attempt unclaimed this long is re-published
    timeout_grace_s: float = 5.0  # the worker enforces timeouts; this is the backstop
    reclaim_consumes_retry: bool = False
    max_losses: int = 3  # a task that keeps killing its worker fails after this many losses
    gone_workers: frozenset[str] = frozenset()  # workers whose ZooKeeper session ended


@dataclass(frozen=True)
class NewRun:
    dag_id: str
    fire_at: datetime
    interval_start: datetime
    interval_end: datetime


@dataclass(frozen=True)
class TIChange:
    """Move a task instance from `expected` (at `attempt`) to `state`; applied conditionally."""

    ti_id: int
    attempt: int
    expected: TaskState
    state: TaskState
    failures: int | None = None
    losses: int | None = None
    next_try_at: datetime | None = None
    attempt_state: str | None = None  # also close the attempt row with this state
    reason: str = ""


@dataclass
class Decisions:
    new_runs: list[NewRun] = field(default_factory=list)
    start_runs: list[int] = field(default_factory=list)
    finish_runs: list[tuple[int, RunState]] = field(default_factory=list)
    to_queue: list[tuple[int, int]] = field(default_factory=list)  # (ti_id, new attempt)
    changes: list[TIChange] = field(default_factory=list)
    republish: list[tuple[int, int]] = field(default_factory=list)  # (ti_id, attempt)

    def __bool__(self) -> bool:
        return any(
            (
                self.new_runs,
                self.start_runs,
                self.finish_runs,
                self.to_queue,
                self.changes,
                self.republish,
            )
        )


def plan(
    dags: Mapping[str, DagSpec], runs: Sequence[RunSnap], now: datetime, limits: Limits
) -> Decisions:
    out = Decisions()
    for spec in dags.values():
        out.new_runs.extend(due_runs(spec, now))
    out.start_runs.extend(runs_to_start(dags, runs))
    slots = limits.open_slots
    for run in runs:  # runs started now get their task instances when this plan is applied
        out.changes.extend(supervise(run, now, limits))
        dag = dags.get(run.dag_id)
        if dag is not None and run.state is RunState.RUNNING:
            slots = _advance(run, dag, now, slots, out, limits)
    return out


def due_runs(dag: DagSpec, now: datetime) -> list[NewRun]:
    """Scheduled runs that fell due since the last one created (all of them with catchup)."""
    if dag.schedule is None or dag.is_paused or dag.start_date is None:
        return []
    fires = dag.schedule.due_fires(dag.start_date, dag.last_fire_at, now, dag.catchup)
    return [NewRun(dag.dag_id, fire, *dag.schedule.data_interval_ending_at(fire)) for fire in fires]


def runs_to_start(dags: Mapping[str, DagSpec], runs: Sequence[RunSnap]) -> list[int]:
    """Promote queued runs, oldest first, while their DAG is under max_active_runs."""
    active: dict[str, int] = {}
    for run in runs:
        if run.state is RunState.RUNNING:
            active[run.dag_id] = active.get(run.dag_id, 0) + 1
    started = []
    for run in sorted(runs, key=lambda r: r.pk):
        dag = dags.get(run.dag_id)
        if run.state is not RunState.QUEUED or dag is None or dag.is_paused:
            continue
        if active.get(run.dag_id, 0) < dag.max_active_runs:
            active[run.dag_id] = active.get(run.dag_id, 0) + 1
            started.append(run.pk)
    return started


def supervise(run: RunSnap, now: datetime, limits: Limits) -> list[TIChange]:
    """Reclaim silent attempts and time out overrunning ones (the worker's own timer is first)."""
    changes = []
    for ti in run.tis.values():
        if ti.state is not TaskState.RUNNING:
            continue
        last_sign = ti.heartbeat_at or ti.started_at
        if ti.worker_id is not None and ti.worker_id in limits.gone_workers:
            changes.append(_fail(ti, now, "lost", limits, "worker's ZooKeeper session ended"))
        elif last_sign is not None and now - last_sign > timedelta(seconds=limits.worker_timeout_s):
            changes.append(_fail(ti, now, "lost", limits, "worker stopped heartbeating"))
        elif _overran(ti, now, limits.timeout_grace_s):
            changes.append(_fail(ti, now, "timed_out", limits, "execution timeout"))
    return changes


def _overran(ti: TISnap, now: datetime, grace_s: float) -> bool:
    if ti.timeout_s is None or ti.started_at is None:
        return False
    return now - ti.started_at > timedelta(seconds=ti.timeout_s + grace_s)


def _fail(ti: TISnap, now: datetime, attempt_state: str, limits: Limits, why: str) -> TIChange:
    lost = attempt_state == "lost"
    losses = ti.losses + 1 if lost else ti.losses
    if lost and losses >= limits.max_losses:
        return TIChange(
            ti.id,
            ti.attempt,
            TaskState.RUNNING,
            TaskState.FAILED,
            failures=ti.failures + 1,
            losses=losses,
            attempt_state=attempt_state,
            reason=f"{why}; lost {losses} times, the cap ([worker] max_losses): failed",
        )
    nxt = after_failure(
        failures=ti.failures,
        retries=ti.retries,
        retry_delay_s=ti.retry_delay_s,
        now=now,
        counts_as_failure=not lost or limits.reclaim_consumes_retry,
    )
    return TIChange(
        ti.id,
        ti.attempt,
        TaskState.RUNNING,
        nxt.state,
        failures=nxt.failures,
        losses=losses if lost else None,
        next_try_at=nxt.next_try_at,
        attempt_state=attempt_state,
        reason=why,
    )


def _advance(
    run: RunSnap, dag: DagSpec, now: datetime, slots: int, out: Decisions, limits: Limits
) -> int:
    """Queue ready task instances of a running run, settle blocked ones, finish the run."""
    states = {tid: ti.state for tid, ti in run.tis.items()}
    for tid, ti in run.tis.items():
        if ti.state is TaskState.QUEUED and _stale(ti, now, limits.queued_timeout_s):
            out.republish.append((ti.id, ti.attempt))
        if dag.is_paused:
            continue
        verdict = _readiness(ti, dag, states, now)
        if verdict is Verdict.READY and slots > 0:
            out.to_queue.append((ti.id, ti.attempt + 1))
            slots -= 1
        elif verdict in (Verdict.SKIP, Verdict.UPSTREAM_FAILED):
            new = TaskState.SKIPPED if verdict is Verdict.SKIP else TaskState.UPSTREAM_FAILED
            out.changes.append(TIChange(ti.id, ti.attempt, ti.state, new))
            states[tid] = new
    outcome = run_outcome(states.values())
    if outcome is not None:
        out.finish_runs.append((run.pk, outcome))
    return slots


def _stale(ti: TISnap, now: datetime, queued_timeout_s: float) -> bool:
    """Publish a queued attempt again when its message may be lost, backing off: each wait is
    as long as the attempt has already waited, so a long backlog on a broker does not fill up
    with copies (about log2 of the backlog's age of them; duplicates are dropped by the claim)."""
    if ti.queued_at is None:
        return False
    waited = ti.queued_at - (ti.first_queued_at or ti.queued_at)
    return now - ti.queued_at > max(timedelta(seconds=queued_timeout_s), waited)


def _readiness(ti: TISnap, dag: DagSpec, states: Mapping[str, TaskState], now: datetime) -> Verdict:
    if ti.state is TaskState.UP_FOR_RETRY:
        due = ti.next_try_at is None or ti.next_try_at <= now
        return Verdict.READY if due else Verdict.WAIT
    if ti.state is not TaskState.NONE:
        return Verdict.WAIT
    spec = dag.tasks.get(ti.task_id)
    if spec is None:  # the task left the DAG after the run was created
        return Verdict.SKIP
    upstream = [states[u] for u in spec.upstream if u in states]
    return evaluate_trigger(spec.trigger_rule, upstream)
