"""The leader's snapshot and the fenced application of the planner's decisions."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, or_, select, update

from haflow.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS, with_default
from haflow.core.snapshot import (
    BackfillSnap,
    Decisions,
    NewRun,
    TIChange,
    TISnap,
)
from haflow.core.states import (
    BETWEEN_ATTEMPTS,
    IN_FLIGHT_TASK_STATES,
    AttemptState,
    RunState,
    TaskState,
)
from haflow.errors import ConcurrentChange
from haflow.metastore import models as m
from haflow.metastore.dbclock import db_utcnow
from haflow.metastore.records import (
    Applied,
    AttemptRef,
    DagFlags,
    Delta,
    FinishedRun,
    RunHead,
    TaskDef,
)
from haflow.metastore.repository._base import (
    Event,
    _Base,
    _checked,
    _chunks,
    _code_now,
    _event,
)

_TASK_STATE = {t.value: t for t in TaskState}  # TaskState(x) costs more, 10,000 rows a tick


_TI_COLUMNS = (
    m.TaskInstance.id,
    m.TaskInstance.run_pk,
    m.TaskInstance.task_id,
    m.TaskInstance.state,
    m.TaskInstance.attempt,
    m.TaskInstance.failures,
    m.TaskInstance.losses,
    m.TaskInstance.retries,
    m.TaskInstance.retry_delay_s,
    m.TaskInstance.retry_backoff_cap_s,
    m.TaskInstance.next_try_at,
    m.TaskInstance.timeout_s,
    m.TaskInstance.worker_id,
    m.TaskInstance.pool,
    m.TaskInstance.pool_slots,
    m.TaskAttempt.started_at,
    m.TaskAttempt.heartbeat_at,
    m.TaskAttempt.published_at,
    m.TaskAttempt.queued_at,
)
_CHUNK = 500  # ids per IN list, under every backend's bound parameter limit
# The leader's reads at every tick, built once (building them cost more than running them).
_TIS = (
    select(*_TI_COLUMNS)
    .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
    .outerjoin(
        m.TaskAttempt,
        and_(
            m.TaskAttempt.ti_id == m.TaskInstance.id,
            m.TaskAttempt.attempt == m.TaskInstance.attempt,
            or_(
                m.TaskAttempt.state == AttemptState.QUEUED,
                m.TaskAttempt.state == AttemptState.RUNNING,
            ),
        ),
    )
    .where(m.DagRun.state == RunState.RUNNING)
)
_TIS_IN_FLIGHT = _TIS.where(m.TaskInstance.state.in_(IN_FLIGHT_TASK_STATES))
_TIS_OF_RUNS = _TIS.where(m.TaskInstance.run_pk.in_(bindparam("pks", expanding=True)))
_TIS_BY_ID = _TIS.where(m.TaskInstance.id.in_(bindparam("ids", expanding=True)))
_RUN_HEADS = select(
    m.DagRun.id, m.DagRun.dag_id, m.DagRun.state, m.DagRun.revision, m.DagRun.code_hash
).where(m.DagRun.state.in_([RunState.QUEUED, RunState.RUNNING]))
_DAG_FLAGS = select(m.Dag.dag_id, m.Dag.is_paused, m.Dag.last_fire_at, m.Dag.code_hash).where(
    m.Dag.is_active.is_(True)
)
_NOW = select(db_utcnow())
_POOLS = select(m.Pool.name, m.Pool.slots)


class SchedulingQueries(_Base):
    def read(
        self,
        known: Mapping[int, int],
        recheck: Collection[int],
        past: Mapping[str, Collection[str]] | None = None,
    ) -> Delta:
        """What a leader holding the task instances of the runs in `known` (run pk ->
        revision) needs to see the metastore as it is: every unfinished run; every task
        instance of a running run it does not know at that revision; every task instance in
        flight (queued or running: claims, heartbeats and reports change only those); the
        task instances in `recheck` (the ones it held in flight or changed itself); and for
        the running runs of the DAGs in `past` (DAG id -> its depends_on_past tasks), those
        tasks' states in the run created before each. In one transaction, the metastore's
        clock read first, the active DAGs' rows and the pools last."""
        with self._tx() as conn:
            metastore_now = conn.execute(_NOW).scalar_one()
            heads = [
                RunHead(pk, dag_id, RunState(state), revision, code_hash)
                for pk, dag_id, state, revision, code_hash in conn.execute(_RUN_HEADS)
            ]
            running = [h for h in heads if h.state is RunState.RUNNING]
            unknown = [h.pk for h in running if known.get(h.pk) != h.revision]
            whole: dict[int, dict[str, TISnap]] = {pk: {} for pk in unknown}
            for chunk in _chunks(unknown, _CHUNK):
                for pk, ti in _tis(conn, _TIS_OF_RUNS, {"pks": chunk}):
                    whole[pk][ti.task_id] = ti
            tis = [(pk, ti) for pk, ti in _tis(conn, _TIS_IN_FLIGHT, {}) if pk not in whole]
            seen = {ti.id for _, ti in tis}
            rest = sorted(set(recheck) - seen)
            for chunk in _chunks(rest, _CHUNK):
                tis += list(_tis(conn, _TIS_BY_ID, {"ids": chunk}))
            before = _past(conn, [h for h in running if h.dag_id in (past or {})], past or {})
            dags = [
                DagFlags(dag_id, bool(paused), last_fire_at, code_hash)
                for dag_id, paused, last_fire_at, code_hash in conn.execute(_DAG_FLAGS)
            ]
            pools = with_default({name: slots for name, slots in conn.execute(_POOLS)})
            backfills = _backfills(conn)
        return Delta(metastore_now, heads, whole, tis, dags, before, pools, backfills)

    def apply(
        self,
        d: Decisions,
        task_defs: Mapping[str, Sequence[TaskDef]],
        epoch: int,
        now: datetime,
        version_defs: Mapping[tuple[str, str], Sequence[TaskDef]] | None = None,
    ) -> Applied:
        """Apply the planner's decisions in one fenced transaction; returns what to publish
        and the runs it ended. A run started gets the task instances of its own code version
        (`version_defs`, by DAG id and hash) when known, else its DAG's (`task_defs`)."""
        with self._tx(epoch, now) as conn:
            ev: list[Event] = []
            self._check_revisions(conn, d.revisions)
            self._create_runs(conn, d.new_runs, epoch, now, ev)
            self._start_runs(conn, d.start_runs, task_defs, version_defs or {}, now, ev)
            self._change_tis(conn, d.changes, epoch, now, ev)
            refs = self._queue(conn, d.to_queue, epoch, now, ev)
            if d.capped:
                _check_pools(conn, [ti_id for ti_id, _ in d.to_queue])
            refs += self._republish(conn, d.republish, epoch, now)
            finished = self._finish_runs(conn, d.finish_runs, now, ev)
            self._finish_backfills(conn, d.finish_backfills, epoch, now, ev)
            self._emit(conn, ev)
        return Applied(refs, finished)

    def _create_runs(
        self, conn: Connection, new: Sequence[NewRun], epoch: int, now: datetime, ev: list[Event]
    ) -> None:
        """Create the runs of the schedule and of backfills: one per interval, so an interval
        that has its run already (the schedule's, or a backfill's) gets none more. Only a
        schedule's run moves the DAG's last fire time."""
        for r in new:
            kind = "scheduled" if r.backfill_id is None else "backfill"
            there = conn.execute(
                select(m.DagRun.id).where(
                    m.DagRun.dag_id == r.dag_id, m.DagRun.scheduled_fire_at == r.fire_at
                )
            ).first()
            if there is None:
                wanted = f"{kind}__{r.interval_end.isoformat()}"
                run_id = _free_run_id(conn, r.dag_id, wanted)
                conn.execute(
                    insert(m.DagRun).values(
                        dag_id=r.dag_id,
                        run_id=run_id,
                        run_type=kind,
                        state=RunState.QUEUED,
                        conf="{}",
                        scheduled_fire_at=r.fire_at,
                        data_interval_start=r.interval_start,
                        data_interval_end=r.interval_end,
                        created_at=now,
                        created_epoch=epoch,
                        backfill_id=r.backfill_id,
                        code_hash=_code_now(r.dag_id),
                    )
                )
                detail = {"fire_at": r.fire_at.isoformat()}
                if run_id != wanted:
                    detail["renamed_from"] = wanted
                    detail["why"] = "another run (a manual one) has that id"
                if r.backfill_id is not None:
                    detail["backfill"] = str(r.backfill_id)
                ev.append(
                    _event(
                        "run.created",
                        self.actor,
                        now,
                        epoch=epoch,
                        dag_id=r.dag_id,
                        run_id=run_id,
                        detail=detail,
                    )
                )
            if r.backfill_id is None:
                _checked(  # the DAG was deleted since the snapshot: create no orphan run
                    conn.execute(
                        update(m.Dag).where(m.Dag.dag_id == r.dag_id).values(last_fire_at=r.fire_at)
                    ),
                    1,
                    f"record the last fire time of DAG {r.dag_id!r}",
                )

    def _finish_backfills(
        self, conn: Connection, ids: Sequence[int], epoch: int, now: datetime, ev: list[Event]
    ) -> None:
        for bid in ids:
            row = conn.execute(select(m.Backfill.dag_id).where(m.Backfill.id == bid)).first()
            done = conn.execute(
                update(m.Backfill)
                .where(m.Backfill.id == bid, m.Backfill.state == "running")
                .values(state="done", ended_at=now)
            )
            if done.rowcount and row is not None:
                detail = {"backfill": bid}
                ev.append(
                    _event(
                        "backfill.done",
                        self.actor,
                        now,
                        epoch=epoch,
                        dag_id=row.dag_id,
                        detail=detail,
                    )
                )

    def _check_revisions(self, conn: Connection, revisions: Mapping[int, int]) -> None:
        """The runs the decisions were planned from are still at those revisions; their rows
        stay locked until the commit, so a clear waits for this transaction, then bumps."""
        pks = sorted(revisions)
        for chunk in _chunks(pks, _CHUNK):
            rows = conn.execute(
                select(m.DagRun.id, m.DagRun.revision)
                .where(m.DagRun.id.in_(chunk))
                .with_for_update()
            ).all()
            changed = [pk for pk, rev in rows if revisions[pk] != rev]
            if changed or len(rows) != len(chunk):
                raise ConcurrentChange(
                    f"runs {changed or chunk} changed since the snapshot (cleared or deleted); "
                    "nothing was applied"
                )

    def _start_runs(
        self,
        conn: Connection,
        pks: Sequence[int],
        task_defs: Mapping[str, Sequence[TaskDef]],
        version_defs: Mapping[tuple[str, str], Sequence[TaskDef]],
        now: datetime,
        ev: list[Event],
    ) -> None:
        for pk in pks:
            run = conn.execute(
                select(m.DagRun.dag_id, m.DagRun.run_id, m.DagRun.code_hash).where(
                    m.DagRun.id == pk
                )
            ).one()
            _checked(
                conn.execute(
                    update(m.DagRun)
                    .where(m.DagRun.id == pk, m.DagRun.state == RunState.QUEUED)
                    .values(state=RunState.RUNNING, started_at=now)
                ),
                1,
                "start run",
            )
            defs = version_defs.get((run.dag_id, run.code_hash or ""))
            if defs is None:
                defs = task_defs.get(run.dag_id, ())
            if defs:
                conn.execute(
                    insert(m.TaskInstance),
                    [
                        {
                            "run_pk": pk,
                            "dag_id": run.dag_id,
                            "task_id": t.task_id,
                            "state": TaskState.NONE,
                            "attempt": 0,
                            "failures": 0,
                            "retries": t.retries,
                            "retry_delay_s": t.retry_delay_s,
                            "retry_backoff_cap_s": t.retry_backoff_cap_s,
                            "timeout_s": t.timeout_s,
                            "queue": t.queue,
                            "pool": t.pool,
                            "pool_slots": t.pool_slots,
                        }
                        for t in defs
                    ],
                )
            ev.append(
                _event(
                    "run.started",
                    self.actor,
                    now,
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    detail={"tasks": len(defs)},
                )
            )

    def _change_tis(
        self,
        conn: Connection,
        changes: Sequence[TIChange],
        epoch: int,
        now: datetime,
        ev: list[Event],
    ) -> None:
        info = self._ti_info(conn, [c.ti_id for c in changes]) if changes else {}
        for c in changes:
            ended = now if TaskState(c.state).finished else None
            values: dict[str, Any] = {"state": c.state, "ended_at": ended}
            if c.failures is not None:
                values.update(failures=c.failures, next_try_at=c.next_try_at)
            if c.losses is not None:
                values["losses"] = c.losses
            _checked(
                conn.execute(
                    update(m.TaskInstance)
                    .where(
                        m.TaskInstance.id == c.ti_id,
                        m.TaskInstance.attempt == c.attempt,
                        m.TaskInstance.state == c.expected,
                    )
                    .values(**values)
                ),
                1,
                "change task instance",
            )
            if c.attempt_state is not None:
                conn.execute(
                    update(m.TaskAttempt)
                    .where(
                        m.TaskAttempt.ti_id == c.ti_id,
                        m.TaskAttempt.attempt == c.attempt,
                        m.TaskAttempt.state == AttemptState.RUNNING,
                    )
                    .values(state=c.attempt_state, ended_at=now, reason=c.reason)
                )
            dag_id, run_id, task_id, _ = info[c.ti_id]
            where = dict(dag_id=dag_id, run_id=run_id, task_id=task_id, attempt=c.attempt)
            detail = {"from": c.expected, "attempt_state": c.attempt_state, "reason": c.reason}
            ev.append(_event("ti." + c.state, self.actor, now, epoch=epoch, **where, detail=detail))
            if c.attempt_state == AttemptState.LOST:
                ev.append(
                    _event(
                        "attempt.reclaimed",
                        self.actor,
                        now,
                        epoch=epoch,
                        **where,
                        detail={"reason": c.reason},
                    )
                )

    def _queue(
        self,
        conn: Connection,
        items: Sequence[tuple[int, int]],
        epoch: int,
        now: datetime,
        ev: list[Event],
    ) -> list[AttemptRef]:
        if not items:
            return []
        ti = m.TaskInstance
        _checked(
            conn.execute(
                update(ti)
                .where(
                    ti.id == bindparam("b_id"),
                    ti.attempt == bindparam("b_prev"),
                    # not in_(): an IN list cannot be used with executemany
                    or_(*(ti.state == s for s in (TaskState.NONE, *BETWEEN_ATTEMPTS))),
                )
                .values(
                    state=TaskState.QUEUED,
                    attempt=bindparam("b_attempt"),
                    queued_at=now,
                    worker_id=None,
                    started_at=None,
                    ended_at=None,
                ),
                [{"b_id": i, "b_prev": k - 1, "b_attempt": k} for i, k in items],
            ),
            len(items),
            "queue task instances",
        )
        conn.execute(
            insert(m.TaskAttempt),
            [
                {
                    "ti_id": i,
                    "attempt": k,
                    "state": AttemptState.QUEUED,
                    "epoch": epoch,
                    "queued_at": now,
                    "published_at": now,
                    "reason": "",
                }
                for i, k in items
            ],
        )
        info = self._ti_info(conn, [i for i, _ in items])
        for i, k in items:
            dag_id, run_id, task_id, _ = info[i]
            ev.append(
                _event(
                    "ti.queued",
                    self.actor,
                    now,
                    epoch=epoch,
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=task_id,
                    attempt=k,
                )
            )
        return [AttemptRef(i, k, epoch, info[i][3]) for i, k in items]

    def _republish(
        self, conn: Connection, items: Sequence[tuple[int, int]], epoch: int, now: datetime
    ) -> list[AttemptRef]:
        refs = []
        for i, k in items:
            res = conn.execute(
                update(m.TaskAttempt)
                .where(
                    m.TaskAttempt.ti_id == i,
                    m.TaskAttempt.attempt == k,
                    m.TaskAttempt.state == AttemptState.QUEUED,
                )
                .values(published_at=now, epoch=epoch)  # only this message can claim it now
            )
            if res.rowcount == 1:
                queue = conn.execute(
                    select(m.TaskInstance.queue).where(m.TaskInstance.id == i)
                ).scalar_one()
                refs.append(AttemptRef(i, k, epoch, queue))
        return refs

    def republish_queued(self, epoch: int, now: datetime) -> list[AttemptRef]:
        """Every attempt still queued, e.g. by a leader that died before its message went out."""
        with self._tx(epoch, now) as conn:
            rows = conn.execute(
                select(m.TaskAttempt.ti_id, m.TaskAttempt.attempt).where(
                    m.TaskAttempt.state == AttemptState.QUEUED
                )
            ).all()
            return self._republish(conn, [(r.ti_id, r.attempt) for r in rows], epoch, now)

    def _finish_runs(
        self,
        conn: Connection,
        items: Sequence[tuple[int, RunState]],
        now: datetime,
        ev: list[Event],
    ) -> list[FinishedRun]:
        finished = []
        for pk, state in items:
            res = conn.execute(
                update(m.DagRun)
                .where(
                    m.DagRun.id == pk,
                    m.DagRun.state == RunState.RUNNING,
                )
                .values(state=state, ended_at=now)
            )
            if res.rowcount == 1:
                run = conn.execute(
                    select(
                        m.DagRun.dag_id, m.DagRun.run_id, m.DagRun.revision, m.DagRun.started_at
                    ).where(m.DagRun.id == pk)
                ).one()
                finished.append(FinishedRun(run.dag_id, run.run_id, state, run.started_at, now))
                ev.append(
                    _event(
                        "run." + state,
                        self.actor,
                        now,
                        dag_id=run.dag_id,
                        run_id=run.run_id,
                        detail={"revision": run.revision},  # tells a re-run's end apart
                    )
                )
        return finished


_ti_in = m.TaskInstance.__table__.alias("queued_now")
_SLOTS = func.coalesce(
    m.Pool.slots,
    case((m.TaskInstance.pool == DEFAULT_POOL, DEFAULT_POOL_SLOTS), else_=0),
)
_OVER_COMMITTED = (
    select(m.TaskInstance.pool, func.sum(m.TaskInstance.pool_slots), func.max(_SLOTS))
    .outerjoin(m.Pool, m.Pool.name == m.TaskInstance.pool)
    .where(
        m.TaskInstance.state.in_(IN_FLIGHT_TASK_STATES),
        m.TaskInstance.pool.in_(
            select(_ti_in.c.pool).where(_ti_in.c.id.in_(bindparam("ids", expanding=True)))
        ),
    )
    .group_by(m.TaskInstance.pool)
    .having(func.max(_SLOTS) >= 0, func.sum(m.TaskInstance.pool_slots) > func.max(_SLOTS))
)


def _free_run_id(conn: Connection, dag_id: str, wanted: str) -> str:
    """`wanted`, or, when another run of the DAG has taken it (a manual run named like the
    schedule's, triggered before reserved prefixes were refused), the first of `wanted.1`,
    `wanted.2` ... that is free: the scheduled run still happens, under an id of its own."""
    named = select(m.DagRun.run_id).where(m.DagRun.dag_id == dag_id)
    if conn.execute(named.where(m.DagRun.run_id == wanted)).first() is None:
        return wanted  # the rule, by the unique index: a clash is the exception
    taken = set(conn.execute(named.where(m.DagRun.run_id.like(f"{wanted}.%"))).scalars())
    n = 1
    while f"{wanted}.{n}" in taken:
        n += 1
    return f"{wanted}.{n}"


def _check_pools(conn: Connection, queued: Sequence[int]) -> None:
    """In the transaction that queues `queued`: no pool they use holds more in flight than its
    slots; else roll back (the plan was made on a view that no longer holds)."""
    if not queued:
        return
    for chunk in _chunks(sorted(set(queued)), _CHUNK):
        over = conn.execute(_OVER_COMMITTED, {"ids": chunk}).first()
        if over is not None:
            pool, used, slots = over
            raise ConcurrentChange(
                f"pool {pool!r} would hold {used} slots in flight, over its {slots}"
            )


_RUNNING_BACKFILLS = select(m.Backfill).where(m.Backfill.state == "running")
_FIRES_FROM = (
    select(m.DagRun.scheduled_fire_at)
    .where(
        m.DagRun.dag_id == bindparam("dag_id"),
        m.DagRun.scheduled_fire_at > bindparam("start"),
    )
    .order_by(m.DagRun.scheduled_fire_at)
    .limit(2 * 1000 + 1)
)
# every unfinished run of the backfill's range, its own and the others (the schedule's, an
# earlier backfill's): one cleared by --reset-existing is running again, and the backfill is
# not done before it ends (the range as BackfillQueries.get counts it)
_ACTIVE_OF_BACKFILL = select(func.count()).where(
    m.DagRun.dag_id == bindparam("dag_id"),
    m.DagRun.scheduled_fire_at.is_not(None),
    m.DagRun.data_interval_start >= bindparam("start"),
    m.DagRun.data_interval_start <= bindparam("end"),
    m.DagRun.state.in_([RunState.QUEUED, RunState.RUNNING]),
)


def _backfills(conn: Connection) -> list[BackfillSnap]:
    """The running backfills, each with the fire times of its DAG's runs from its range on
    (its intervals' ends are after its start) and the unfinished runs of its range."""
    out = []
    for b in conn.execute(_RUNNING_BACKFILLS):
        rows = conn.execute(_FIRES_FROM, {"dag_id": b.dag_id, "start": b.start}).scalars()
        fires = [f for f in rows if f is not None]
        where = {"dag_id": b.dag_id, "start": b.start, "end": b.end}
        active = conn.execute(_ACTIVE_OF_BACKFILL, where).scalar_one()
        out.append(
            BackfillSnap(
                b.id, b.dag_id, b.start, b.end, b.max_active_runs, frozenset(fires), int(active)
            )
        )
    return out


_prev = m.DagRun.__table__.alias("prev_run")
_PAST = (
    select(m.DagRun.id, m.TaskInstance.task_id, m.TaskInstance.state)
    .join(
        m.TaskInstance,
        m.TaskInstance.run_pk
        == select(func.max(_prev.c.id))
        .where(_prev.c.dag_id == m.DagRun.dag_id, _prev.c.id < m.DagRun.id)
        .scalar_subquery(),
    )
    .where(
        m.DagRun.id.in_(bindparam("pks", expanding=True)),
        m.TaskInstance.task_id.in_(bindparam("tasks", expanding=True)),
    )
)


def _past(
    conn: Connection, runs: Sequence[RunHead], tasks: Mapping[str, Collection[str]]
) -> dict[int, dict[str, TaskState]]:
    """For each of `runs`: the states of its DAG's `tasks` in the DAG's run created before."""
    out: dict[int, dict[str, TaskState]] = {h.pk: {} for h in runs}
    by_dag: dict[str, list[int]] = {}
    for h in runs:
        by_dag.setdefault(h.dag_id, []).append(h.pk)
    for dag_id, pks in by_dag.items():
        for chunk in _chunks(pks, _CHUNK):
            params = {"pks": chunk, "tasks": sorted(tasks[dag_id])}
            for pk, task_id, state in conn.execute(_PAST, params):
                out[pk][task_id] = TaskState(state)
    return out


def _tis(conn: Connection, stmt: Any, params: dict[str, Any]) -> Iterator[tuple[int, TISnap]]:
    """(run pk, task instance with its current attempt's timestamps) of the rows `stmt` (one
    of the `_TIS_*` statements) selects with `params`."""
    rows = conn.execute(stmt, params)
    # positional unpacking: a Row's attribute access per column is the slower path
    for (
        ti_id,
        run_pk,
        task_id,
        state,
        attempt,
        failures,
        losses,
        retries,
        retry_delay_s,
        retry_backoff_cap_s,
        next_try_at,
        timeout_s,
        worker_id,
        pool,
        pool_slots,
        a_started,
        a_beat,
        a_published,
        a_queued,
    ) in rows:
        yield (
            run_pk,
            TISnap(
                id=ti_id,
                task_id=task_id,
                state=_TASK_STATE[state],
                attempt=attempt,
                failures=failures,
                losses=losses,
                retries=retries,
                retry_delay_s=retry_delay_s,
                retry_backoff_cap_s=retry_backoff_cap_s,
                next_try_at=next_try_at,
                timeout_s=timeout_s,
                started_at=a_started,
                heartbeat_at=a_beat,
                queued_at=a_published,
                first_queued_at=a_queued,
                worker_id=worker_id,
                pool=pool,
                pool_slots=pool_slots,
            ),
        )
