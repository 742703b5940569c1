"""The pure planner: given a snapshot of the metastore and `now`, decide what changes next.

It never does IO and never reads a clock; the scheduling loop hands it a snapshot, applies the
returned decisions in one fenced transaction, then publishes the queued attempts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from haflow.core.pools import Budget, unfit
from haflow.core.reclamation import stale_queued, supervise
from haflow.core.rules import Verdict, evaluate_trigger, run_outcome
from haflow.core.snapshot import (
    BackfillSnap,
    DagSpec,
    Decisions,
    Limits,
    NewRun,
    RunSnap,
    ScheduleLike,
    TaskSpec,
    TIChange,
    TISnap,
)
from haflow.core.states import (
    BETWEEN_ATTEMPTS,
    IN_FLIGHT_TASK_STATES,
    RunState,
    TaskState,
    TriggerRule,
)

__all__ = [
    "DagSpec",
    "Decisions",
    "Limits",
    "NewRun",
    "RunSnap",
    "ScheduleLike",
    "TIChange",
    "TISnap",
    "TaskSpec",
    "Versions",
    "due_runs",
    "plan",
    "runs_to_start",
    "supervise",
]


Versions = Mapping[tuple[str, str], Mapping[str, TaskSpec]]
"""(DAG id, code version) -> that version's tasks: what a run made with an older version of
its DAG than `DagSpec.code_hash` is planned with."""


def plan(
    dags: Mapping[str, DagSpec],
    runs: Sequence[RunSnap],
    now: datetime,
    limits: Limits,
    backfills: Sequence[BackfillSnap] = (),
    versions: Versions | None = None,
) -> Decisions:
    """`versions` None: every run is planned with its DAG's tasks now (no versions kept).

    A DAG whose own data makes planning it raise (a schedule past the calendar, say) is left
    out of the plan and named in `Decisions.broken`, with what it raised: the other DAGs are
    planned as ever (the loop sets it aside, haflow.core.isolation)."""
    out = Decisions()
    _create_runs(out, dags, backfills, now)
    out.start_runs.extend(runs_to_start(dags, runs, versions))
    slots = limits.open_slots
    budget = in_flight(runs, limits.pools)
    for run in runs:  # runs started now get their task instances when this plan is applied
        before = _count(out)
        try:
            out.changes.extend(supervise(run, now, limits))
            dag = dag_of(run, dags, versions)
            if dag is not None and run.state is RunState.RUNNING:
                slots = _advance(run, dag, now, slots, out, limits, budget)
        except Exception as exc:
            _broken(out, run.dag_id, exc)
        if _count(out) != before:
            out.revisions[run.pk] = run.revision
    if out.broken:
        _leave_out(out, runs, backfills)
    return out


def _create_runs(
    out: Decisions, dags: Mapping[str, DagSpec], backfills: Sequence[BackfillSnap], now: datetime
) -> None:
    """The runs the schedules and the backfills call for now; the backfills they finish."""
    for spec in dags.values():
        try:
            out.new_runs.extend(due_runs(spec, now))
        except Exception as exc:  # this DAG's data; the others go on
            _broken(out, spec.dag_id, exc)
    for b in backfills:
        try:
            more = backfill_runs(b, dags.get(b.dag_id), now)
            done = not more and b.active == 0 and _covered(b, dags.get(b.dag_id), now)
        except Exception as exc:
            _broken(out, b.dag_id, exc)
            continue
        out.new_runs.extend(more)
        if done:
            out.finish_backfills.append(b.id)


def _broken(out: Decisions, dag_id: str, exc: Exception) -> None:
    out.broken.setdefault(dag_id, f"planning it failed: {type(exc).__name__}: {exc}"[:500])


def _leave_out(out: Decisions, runs: Sequence[RunSnap], backfills: Sequence[BackfillSnap]) -> None:
    """Take every part of the DAGs in `out.broken` out of `out` (what was decided for them
    before planning them raised, as well as their other runs')."""
    gone = out.broken.keys()
    pks = {r.pk for r in runs if r.dag_id in gone}
    tis = {ti.id for r in runs if r.pk in pks for ti in r.tis.values()}
    ended = {b.id for b in backfills if b.dag_id in gone}
    out.new_runs = [n for n in out.new_runs if n.dag_id not in gone]
    out.start_runs = [pk for pk in out.start_runs if pk not in pks]
    out.finish_runs = [f for f in out.finish_runs if f[0] not in pks]
    out.to_queue = [q for q in out.to_queue if q[0] not in tis]
    out.changes = [c for c in out.changes if c.ti_id not in tis]
    out.republish = [r for r in out.republish if r[0] not in tis]
    out.revisions = {pk: rev for pk, rev in out.revisions.items() if pk not in pks}
    out.finish_backfills = [b for b in out.finish_backfills if b not in ended]


def _count(d: Decisions) -> int:
    return len(d.changes) + len(d.to_queue) + len(d.republish) + len(d.finish_runs)


def due_runs(dag: DagSpec, now: datetime) -> list[NewRun]:
    """Scheduled runs that fell due since the last one created (all of them with catchup),
    none for an interval that ends after the DAG's end_date."""
    if dag.schedule is None or dag.is_paused or dag.start_date is None:
        return []
    until = now if dag.end_date is None else min(now, dag.end_date)
    fires = dag.schedule.due_fires(dag.start_date, dag.last_fire_at, until, dag.catchup)
    return [NewRun(dag.dag_id, fire, *dag.schedule.data_interval_ending_at(fire)) for fire in fires]


def backfill_intervals_due(
    b: BackfillSnap, dag: DagSpec | None, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The intervals of `b`'s range that have ended by `now` (a later one is the schedule's
    to run when it ends); none for a DAG gone or no longer scheduled."""
    if dag is None or dag.schedule is None or dag.start_date is None:
        return []
    found = dag.schedule.intervals_starting(dag.start_date, b.start, min(b.end, now))
    return [(s, e) for s, e in found if e <= now]


def backfill_runs(b: BackfillSnap, dag: DagSpec | None, now: datetime) -> list[NewRun]:
    """The next runs backfill `b` creates, oldest interval first: those of its range with no
    run yet (the schedule's, or an earlier backfill's, is that interval's run), as many as
    keep the unfinished runs of its range within its max_active_runs."""
    room = b.max_active_runs - b.active
    if room <= 0:
        return []
    missing = [(s, e) for s, e in backfill_intervals_due(b, dag, now) if e not in b.existing]
    return [NewRun(b.dag_id, e, s, e, backfill_id=b.id) for s, e in missing[:room]]


def _covered(b: BackfillSnap, dag: DagSpec | None, now: datetime) -> bool:
    """Every interval of the range that has ended has its run."""
    return all(e in b.existing for _, e in backfill_intervals_due(b, dag, now))


def dag_of(
    run: RunSnap, dags: Mapping[str, DagSpec], versions: Versions | None = None
) -> DagSpec | None:
    """The DAG as `run` sees it: with the tasks of the run's own code version. None when the
    DAG is gone, or when that version's tasks are not known here yet: the run waits."""
    dag = dags.get(run.dag_id)
    if dag is None or versions is None or run.code_hash in (None, dag.code_hash):
        return dag
    tasks = versions.get((run.dag_id, run.code_hash or ""))
    return None if tasks is None else replace(dag, tasks=tasks)


def runs_to_start(
    dags: Mapping[str, DagSpec], runs: Sequence[RunSnap], versions: Versions | None = None
) -> list[int]:
    """Promote queued runs, oldest first, while their DAG is under max_active_runs (a run
    whose code version is not known here yet waits)."""
    active: dict[str, int] = {}
    for run in runs:
        if run.state is RunState.RUNNING:
            active[run.dag_id] = active.get(run.dag_id, 0) + 1
    started = []
    for run in sorted(runs, key=lambda r: r.pk):
        dag = dags.get(run.dag_id)
        if run.state is not RunState.QUEUED or dag is None or dag.is_paused:
            continue
        if dag_of(run, dags, versions) is None:
            continue
        if active.get(run.dag_id, 0) < dag.max_active_runs:
            active[run.dag_id] = active.get(run.dag_id, 0) + 1
            started.append(run.pk)
    return started


_Upstream = tuple[TriggerRule, tuple[TaskState, ...]]


def in_flight(runs: Sequence[RunSnap], pools: Mapping[str, int] | None) -> Budget:
    """What the task instances in flight hold: pool slots, and counts per DAG and task."""
    budget = Budget(pools)
    for run in runs:
        for ti in run.tis.values():
            if ti.state in IN_FLIGHT_TASK_STATES:
                budget.hold(run.dag_id, ti.task_id, ti.pool, ti.pool_slots)
    return budget


def _advance(
    run: RunSnap,
    dag: DagSpec,
    now: datetime,
    slots: int,
    out: Decisions,
    limits: Limits,
    budget: Budget,
) -> int:
    """Queue ready task instances of a running run while their pool, DAG and task limits
    allow (`haflow.core.pools`); fail those no pool can ever hold, settle blocked ones,
    finish the run."""
    states = {tid: ti.state for tid, ti in run.tis.items()}
    seen: dict[_Upstream, Verdict] = {}  # a fan-out's tasks share one verdict
    for tid, ti in run.tis.items():
        if ti.state is TaskState.QUEUED and stale_queued(ti, now, limits.queued_timeout_s):
            out.republish.append((ti.id, ti.attempt))
        if dag.is_paused:
            continue
        verdict = _readiness(ti, dag, run, states, now, seen)
        if verdict is Verdict.READY:
            why = unfit(ti.pool, ti.pool_slots, budget.pool_slots)
            if why is not None:
                out.changes.append(
                    TIChange(ti.id, ti.attempt, ti.state, TaskState.FAILED, reason=why)
                )
                states[tid] = TaskState.FAILED
            elif slots > 0 and _fits(budget, run.dag_id, ti, dag):
                out.to_queue.append((ti.id, ti.attempt + 1))
                out.capped = out.capped or budget.capped(ti.pool)
                budget.hold(run.dag_id, tid, ti.pool, ti.pool_slots)
                slots -= 1
        elif verdict in (Verdict.SKIP, Verdict.UPSTREAM_FAILED):
            new = TaskState.SKIPPED if verdict is Verdict.SKIP else TaskState.UPSTREAM_FAILED
            out.changes.append(TIChange(ti.id, ti.attempt, ti.state, new))
            states[tid] = new
    outcome = run_outcome(states.values())
    if outcome is not None:
        out.finish_runs.append((run.pk, outcome))
    return slots


def _fits(budget: Budget, dag_id: str, ti: TISnap, dag: DagSpec) -> bool:
    spec = dag.tasks.get(ti.task_id)
    task_cap = spec.max_active_tis_per_dag if spec is not None else None
    return budget.fits(dag_id, ti.task_id, ti.pool, ti.pool_slots, dag.max_active_tasks, task_cap)


_PAST_DONE = (TaskState.SUCCESS, TaskState.SKIPPED)


def _readiness(
    ti: TISnap,
    dag: DagSpec,
    run: RunSnap,
    states: Mapping[str, TaskState],
    now: datetime,
    seen: dict[_Upstream, Verdict],
) -> Verdict:
    """Whether `ti` may be queued now; `seen` keeps the verdicts of this pass by trigger rule
    and upstream states, which alone decide them. A depends_on_past task's first try also
    waits until the task succeeded (or was skipped) in the run before, as in Airflow."""
    if ti.state in BETWEEN_ATTEMPTS:
        due = ti.next_try_at is None or ti.next_try_at <= now
        return Verdict.READY if due else Verdict.WAIT
    if ti.state is not TaskState.NONE:
        return Verdict.WAIT
    spec = dag.tasks.get(ti.task_id)
    if spec is None:  # the task left the DAG after the run was created
        return Verdict.SKIP
    if spec.depends_on_past and run.past.get(ti.task_id, TaskState.SUCCESS) not in _PAST_DONE:
        return Verdict.WAIT
    key = (spec.trigger_rule, tuple(states[u] for u in spec.upstream if u in states))
    verdict = seen.get(key)
    if verdict is None:
        verdict = seen[key] = evaluate_trigger(*key)
    return verdict
