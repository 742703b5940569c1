"""Every query haflow runs against the metastore, and nowhere else.

Invariants kept here:
- a leader's transaction first re-checks its fencing epoch on the `leader` row, in the same
  transaction (`_fence`); a mismatch rolls everything back and raises FencedOut;
- attempts are claimed and reported by conditional updates on (task instance, attempt, state,
  worker), so a duplicate message or a zombie's late report changes nothing;
- driver errors leave this module as haflow errors, raised `from` the original.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from haflow.core.planner import Decisions, NewRun, RunSnap, TIChange, TISnap
from haflow.core.rules import after_failure
from haflow.core.states import AttemptState, RunState, TaskState
from haflow.errors import (
    BackendUnavailable,
    FencedOut,
    InvalidRequest,
    MetastoreError,
    NotFound,
)
from haflow.metastore import models as m
from haflow.metastore.records import (
    AttemptRef,
    AttemptRow,
    ClaimedAttempt,
    DagRecord,
    DagRow,
    EventRow,
    ImportErrorRow,
    LeaderRow,
    RunRow,
    TaskDef,
    TIRow,
)

Event = dict[str, Any]


def _event(kind: str, actor: str, now: datetime, **fields: Any) -> Event:
    detail = fields.pop("detail", "")
    if not isinstance(detail, str):
        detail = json.dumps(detail, default=str)
    base = {"dag_id": None, "run_id": None, "task_id": None, "attempt": None, "epoch": None}
    return {**base, **fields, "ts": now, "kind": kind, "actor": actor, "detail": detail}


class Repository:
    """The metastore seen through haflow's operations. `actor` names the writer in events."""

    def __init__(self, engine: Engine, *, cluster: str = "default", actor: str = "cli") -> None:
        self.engine = engine
        self.cluster = cluster
        self.actor = actor

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, epoch: int | None = None, now: datetime | None = None) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                if epoch is not None:
                    assert now is not None
                    self._fence(conn, epoch, now)
                yield conn
        except (FencedOut, MetastoreError, NotFound, InvalidRequest):
            raise
        except OperationalError as exc:
            raise BackendUnavailable(f"metastore unreachable: {exc.orig}") from exc
        except IntegrityError as exc:
            raise MetastoreError(f"metastore refused a write: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise BackendUnavailable(f"metastore connection lost: {exc.orig}") from exc
            raise MetastoreError(f"metastore error: {exc.orig}") from exc

    def _fence(self, conn: Connection, epoch: int, now: datetime) -> None:
        res = conn.execute(
            update(m.Leader)
            .where(m.Leader.cluster == self.cluster, m.Leader.epoch == epoch)
            .values(renewed_at=now)
        )
        if res.rowcount != 1:
            raise FencedOut(
                f"scheduler {self.actor} holds epoch {epoch} of cluster {self.cluster!r}, "
                "but the leader row has moved on: stepping down"
            )

    def _emit(self, conn: Connection, events: Sequence[Event]) -> None:
        if events:
            conn.execute(insert(m.Event), list(events))

    def record_event(self, kind: str, now: datetime, **fields: Any) -> None:
        with self._tx() as conn:
            self._emit(conn, [_event(kind, self.actor, now, **fields)])

    # -- leadership ---------------------------------------------------------------------------

    def take_leadership(self, holder: str, mode: str, now: datetime, reason: str = "") -> int:
        """Increment the epoch and name `holder` leader; returns the new epoch."""
        with self._tx() as conn:
            row = conn.execute(
                select(m.Leader.epoch).where(m.Leader.cluster == self.cluster).with_for_update()
            ).first()
            epoch = 1 if row is None else row.epoch + 1
            values = dict(
                epoch=epoch, holder=holder, elector_mode=mode, acquired_at=now, renewed_at=now
            )
            if row is None:
                conn.execute(insert(m.Leader).values(cluster=self.cluster, **values))
            else:
                conn.execute(
                    update(m.Leader).where(m.Leader.cluster == self.cluster).values(**values)
                )
            self._emit(
                conn,
                [
                    _event(
                        "leader.elected",
                        holder,
                        now,
                        epoch=epoch,
                        detail={"mode": mode, "reason": reason},
                    )
                ],
            )
        return epoch

    def resign(self, epoch: int, holder: str, now: datetime, reason: str) -> None:
        with self._tx() as conn:
            self._emit(
                conn,
                [_event("leader.resigned", holder, now, epoch=epoch, detail={"reason": reason})],
            )

    def leader(self) -> LeaderRow | None:
        with self._tx() as conn:
            row = conn.execute(select(m.Leader).where(m.Leader.cluster == self.cluster)).first()
        return None if row is None else LeaderRow(**_pick(row, LeaderRow))

    def heartbeat_scheduler(
        self,
        sid: str,
        *,
        hostname: str,
        pid: int,
        state: str,
        epoch: int | None,
        mode: str,
        now: datetime,
    ) -> None:
        values = dict(state=state, epoch=epoch, elector_mode=mode, heartbeat_at=now)
        with self._tx() as conn:
            res = conn.execute(update(m.Scheduler).where(m.Scheduler.id == sid).values(**values))
            if res.rowcount == 0:
                conn.execute(
                    insert(m.Scheduler).values(
                        id=sid,
                        cluster=self.cluster,
                        hostname=hostname,
                        pid=pid,
                        started_at=now,
                        **values,
                    )
                )

    def schedulers(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(m.Scheduler)
                .where(m.Scheduler.cluster == self.cluster)
                .order_by(m.Scheduler.started_at)
            ).all()
        return [_as_dict(r) for r in rows]

    def heartbeat_worker(
        self,
        wid: str,
        *,
        kind: str,
        hostname: str,
        pid: int,
        queues: str,
        concurrency: int,
        state: str,
        now: datetime,
    ) -> None:
        with self._tx() as conn:
            res = conn.execute(
                update(m.Worker).where(m.Worker.id == wid).values(state=state, heartbeat_at=now)
            )
            if res.rowcount == 0:
                conn.execute(
                    insert(m.Worker).values(
                        id=wid,
                        kind=kind,
                        hostname=hostname,
                        pid=pid,
                        queues=queues,
                        concurrency=concurrency,
                        state=state,
                        started_at=now,
                        heartbeat_at=now,
                    )
                )

    def workers(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(select(m.Worker).order_by(m.Worker.started_at)).all()
        return [_as_dict(r) for r in rows]

    # -- DAGs ---------------------------------------------------------------------------------

    def sync_dags(
        self,
        dags: Sequence[DagRecord],
        errors: Sequence[tuple[str, int | None, str]],
        now: datetime,
        epoch: int | None = None,
    ) -> None:
        """Write what the DAG folder holds now; DAGs gone from it become inactive."""
        with self._tx(epoch, now) as conn:
            known = set(conn.execute(select(m.Dag.dag_id)).scalars())
            for d in dags:
                values = _dag_values(d, now)
                if d.dag_id in known:
                    conn.execute(update(m.Dag).where(m.Dag.dag_id == d.dag_id).values(**values))
                else:
                    conn.execute(insert(m.Dag).values(dag_id=d.dag_id, is_paused=False, **values))
            seen = [d.dag_id for d in dags]
            conn.execute(update(m.Dag).where(m.Dag.dag_id.not_in(seen)).values(is_active=False))
            conn.execute(delete(m.ImportError_))
            if errors:
                conn.execute(
                    insert(m.ImportError_),
                    [
                        {"fileloc": f, "line": ln, "message": msg, "ts": now}
                        for f, ln, msg in errors
                    ],
                )

    def dags(self, *, active_only: bool = True) -> list[DagRow]:
        stmt = select(m.Dag).order_by(m.Dag.dag_id)
        if active_only:
            stmt = stmt.where(m.Dag.is_active.is_(True))
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        return [_dag_row(r) for r in rows]

    def dag(self, dag_id: str) -> DagRow:
        with self._tx() as conn:
            row = conn.execute(select(m.Dag).where(m.Dag.dag_id == dag_id)).first()
        if row is None:
            raise NotFound(
                f"no DAG {dag_id!r} in the metastore (is the scheduler running, "
                "and is the file in the DAGs folder? see `haflow dags list`)"
            )
        return _dag_row(row)

    def set_paused(self, dag_id: str, paused: bool, now: datetime) -> None:
        self.dag(dag_id)
        with self._tx() as conn:
            conn.execute(update(m.Dag).where(m.Dag.dag_id == dag_id).values(is_paused=paused))
            self._emit(
                conn,
                [
                    _event(
                        "dag.paused" if paused else "dag.unpaused", self.actor, now, dag_id=dag_id
                    )
                ],
            )

    def import_errors(self) -> list[ImportErrorRow]:
        with self._tx() as conn:
            rows = conn.execute(select(m.ImportError_).order_by(m.ImportError_.fileloc))
            return [ImportErrorRow(r.fileloc, r.line, r.message, r.ts) for r in rows]

    # -- runs ---------------------------------------------------------------------------------

    def trigger_run(
        self, dag_id: str, conf: Mapping[str, Any], now: datetime, run_id: str | None = None
    ) -> RunRow:
        self.dag(dag_id)
        run_id = run_id or f"manual__{now.isoformat()}"
        with self._tx() as conn:
            exists = conn.execute(
                select(m.DagRun.id).where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
            ).first()
            if exists:
                raise InvalidRequest(f"DAG {dag_id!r} already has a run {run_id!r}")
            conn.execute(
                insert(m.DagRun).values(
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type="manual",
                    state=RunState.QUEUED,
                    conf=json.dumps(dict(conf)),
                    created_at=now,
                    created_epoch=0,
                )
            )
            self._emit(
                conn,
                [
                    _event(
                        "run.triggered",
                        self.actor,
                        now,
                        dag_id=dag_id,
                        run_id=run_id,
                        detail={"conf": dict(conf)},
                    )
                ],
            )
        return self.run(dag_id, run_id)

    def run(self, dag_id: str, run_id: str) -> RunRow:
        with self._tx() as conn:
            row = conn.execute(
                select(m.DagRun).where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
            ).first()
        if row is None:
            raise NotFound(f"DAG {dag_id!r} has no run {run_id!r} (see `haflow dags list-runs`)")
        return _run_row(row)

    def runs(
        self,
        dag_id: str | None = None,
        *,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRow]:
        stmt = select(m.DagRun).order_by(m.DagRun.id.desc()).limit(limit).offset(offset)
        if dag_id is not None:
            stmt = stmt.where(m.DagRun.dag_id == dag_id)
        if state is not None:
            stmt = stmt.where(m.DagRun.state == state)
        with self._tx() as conn:
            return [_run_row(r) for r in conn.execute(stmt)]

    # -- the scheduler's snapshot and decisions -----------------------------------------------

    def snapshot(self) -> list[RunSnap]:
        """Unfinished runs with their task instances and the current attempt's timestamps."""
        a = m.TaskAttempt
        with self._tx() as conn:
            runs = conn.execute(
                select(m.DagRun.id, m.DagRun.dag_id, m.DagRun.state).where(
                    m.DagRun.state.in_([RunState.QUEUED, RunState.RUNNING])
                )
            ).all()
            rows = conn.execute(
                select(
                    m.TaskInstance,
                    a.started_at.label("a_started"),
                    a.heartbeat_at.label("a_beat"),
                    a.published_at.label("a_published"),
                )
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .outerjoin(
                    a, and_(a.ti_id == m.TaskInstance.id, a.attempt == m.TaskInstance.attempt)
                )
                .where(m.DagRun.state == RunState.RUNNING)
            ).all()
        tis: dict[int, dict[str, TISnap]] = {}
        for ti in rows:
            tis.setdefault(ti.run_pk, {})[ti.task_id] = TISnap(
                id=ti.id,
                task_id=ti.task_id,
                state=TaskState(ti.state),
                attempt=ti.attempt,
                failures=ti.failures,
                retries=ti.retries,
                retry_delay_s=ti.retry_delay_s,
                next_try_at=ti.next_try_at,
                timeout_s=ti.timeout_s,
                started_at=ti.a_started,
                heartbeat_at=ti.a_beat,
                queued_at=ti.a_published,
            )
        return [RunSnap(pk, dag_id, RunState(state), tis.get(pk, {})) for pk, dag_id, state in runs]

    def apply(
        self, d: Decisions, task_defs: Mapping[str, Sequence[TaskDef]], epoch: int, now: datetime
    ) -> list[AttemptRef]:
        """Apply the planner's decisions in one fenced transaction; returns what to publish."""
        with self._tx(epoch, now) as conn:
            ev: list[Event] = []
            self._create_runs(conn, d.new_runs, epoch, now, ev)
            self._start_runs(conn, d.start_runs, task_defs, now, ev)
            self._change_tis(conn, d.changes, epoch, now, ev)
            refs = self._queue(conn, d.to_queue, epoch, now, ev)
            refs += self._republish(conn, d.republish, epoch, now)
            self._finish_runs(conn, d.finish_runs, now, ev)
            self._emit(conn, ev)
        return refs

    def _create_runs(
        self, conn: Connection, new: Sequence[NewRun], epoch: int, now: datetime, ev: list[Event]
    ) -> None:
        for r in new:
            run_id = f"scheduled__{r.interval_end.isoformat()}"
            conn.execute(
                insert(m.DagRun).values(
                    dag_id=r.dag_id,
                    run_id=run_id,
                    run_type="scheduled",
                    state=RunState.QUEUED,
                    conf="{}",
                    scheduled_fire_at=r.fire_at,
                    data_interval_start=r.interval_start,
                    data_interval_end=r.interval_end,
                    created_at=now,
                    created_epoch=epoch,
                )
            )
            conn.execute(
                update(m.Dag).where(m.Dag.dag_id == r.dag_id).values(last_fire_at=r.fire_at)
            )
            ev.append(
                _event(
                    "run.created",
                    self.actor,
                    now,
                    epoch=epoch,
                    dag_id=r.dag_id,
                    run_id=run_id,
                    detail={"fire_at": r.fire_at.isoformat()},
                )
            )

    def _start_runs(
        self,
        conn: Connection,
        pks: Sequence[int],
        task_defs: Mapping[str, Sequence[TaskDef]],
        now: datetime,
        ev: list[Event],
    ) -> None:
        for pk in pks:
            run = conn.execute(
                select(m.DagRun.dag_id, m.DagRun.run_id).where(m.DagRun.id == pk)
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
                            "timeout_s": t.timeout_s,
                            "queue": t.queue,
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
        for c in changes:
            ended = now if TaskState(c.state).finished else None
            values: dict[str, Any] = {"state": c.state, "ended_at": ended}
            if c.failures is not None:
                values.update(failures=c.failures, next_try_at=c.next_try_at)
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
            ev.append(
                self._ti_event(
                    conn,
                    "ti." + c.state,
                    c.ti_id,
                    c.attempt,
                    epoch,
                    now,
                    {"from": c.expected, "attempt_state": c.attempt_state, "reason": c.reason},
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
                    or_(ti.state == TaskState.NONE, ti.state == TaskState.UP_FOR_RETRY),
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
                .values(published_at=now)
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
    ) -> None:
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
                    select(m.DagRun.dag_id, m.DagRun.run_id).where(m.DagRun.id == pk)
                ).one()
                ev.append(
                    _event("run." + state, self.actor, now, dag_id=run.dag_id, run_id=run.run_id)
                )

    def _ti_info(
        self, conn: Connection, ids: Sequence[int]
    ) -> dict[int, tuple[str, str, str, str]]:
        out = {}
        for chunk in _chunks(list(ids), 500):
            rows = conn.execute(
                select(
                    m.TaskInstance.id,
                    m.TaskInstance.dag_id,
                    m.DagRun.run_id,
                    m.TaskInstance.task_id,
                    m.TaskInstance.queue,
                )
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .where(m.TaskInstance.id.in_(chunk))
            )
            out.update({r.id: (r.dag_id, r.run_id, r.task_id, r.queue) for r in rows})
        return out

    def _ti_event(
        self,
        conn: Connection,
        kind: str,
        ti_id: int,
        attempt: int,
        epoch: int | None,
        now: datetime,
        detail: Any,
        actor: str | None = None,
    ) -> Event:
        dag_id, run_id, task_id, _ = self._ti_info(conn, [ti_id])[ti_id]
        return _event(
            kind,
            actor or self.actor,
            now,
            epoch=epoch,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            attempt=attempt,
            detail=detail,
        )

    # -- attempts: claim, heartbeat, logs, report ---------------------------------------------

    def claim(self, ref: AttemptRef, worker_id: str, now: datetime) -> ClaimedAttempt | None:
        """Claim a queued attempt for `worker_id`; None when it is not queued at that number."""
        a, ti = m.TaskAttempt, m.TaskInstance
        with self._tx() as conn:
            res = conn.execute(
                update(a)
                .where(
                    a.ti_id == ref.ti_id,
                    a.attempt == ref.attempt,
                    a.state == AttemptState.QUEUED,
                )
                .values(
                    state=AttemptState.RUNNING,
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
            if res.rowcount != 1:
                self._emit(
                    conn,
                    [
                        self._ti_event(
                            conn,
                            "attempt.claim_rejected",
                            ref.ti_id,
                            ref.attempt,
                            ref.epoch,
                            now,
                            "",
                            actor=worker_id,
                        )
                    ],
                )
                return None
            conn.execute(
                update(ti)
                .where(ti.id == ref.ti_id, ti.attempt == ref.attempt)
                .values(state=TaskState.RUNNING, worker_id=worker_id, started_at=now)
            )
            row = conn.execute(
                select(
                    ti.dag_id,
                    ti.task_id,
                    ti.timeout_s,
                    m.DagRun.run_id,
                    m.DagRun.conf,
                    m.DagRun.data_interval_start,
                    m.DagRun.data_interval_end,
                    m.Dag.fileloc,
                )
                .join(m.DagRun, m.DagRun.id == ti.run_pk)
                .join(m.Dag, m.Dag.dag_id == ti.dag_id)
                .where(ti.id == ref.ti_id)
            ).one()
            self._emit(
                conn,
                [
                    _event(
                        "attempt.claimed",
                        worker_id,
                        now,
                        epoch=ref.epoch,
                        dag_id=row.dag_id,
                        run_id=row.run_id,
                        task_id=row.task_id,
                        attempt=ref.attempt,
                    )
                ],
            )
        return ClaimedAttempt(
            ref.ti_id,
            ref.attempt,
            row.dag_id,
            row.run_id,
            row.task_id,
            row.fileloc,
            row.timeout_s,
            json.loads(row.conf or "{}"),
            row.data_interval_start,
            row.data_interval_end,
        )

    def heartbeat_attempt(self, ti_id: int, attempt: int, worker_id: str, now: datetime) -> bool:
        """Renew an attempt's liveness; False means it is no longer ours (reclaimed): stop it."""
        with self._tx() as conn:
            res = conn.execute(
                update(m.TaskAttempt)
                .where(*_mine(ti_id, attempt, worker_id))
                .values(heartbeat_at=now)
            )
        return res.rowcount == 1

    def append_log(self, ti_id: int, attempt: int, data: str, now: datetime) -> None:
        if data:
            with self._tx() as conn:
                conn.execute(
                    insert(m.TaskLog).values(ti_id=ti_id, attempt=attempt, ts=now, data=data)
                )

    def finish_attempt(
        self,
        ti_id: int,
        attempt: int,
        worker_id: str,
        state: AttemptState,
        reason: str,
        now: datetime,
        log: str = "",
    ) -> bool:
        """Report an attempt's end; False (and a `report.rejected` event) for a zombie."""
        with self._tx() as conn:
            if log:
                conn.execute(
                    insert(m.TaskLog).values(ti_id=ti_id, attempt=attempt, ts=now, data=log)
                )
            res = conn.execute(
                update(m.TaskAttempt)
                .where(*_mine(ti_id, attempt, worker_id))
                .values(state=state, ended_at=now, reason=reason[:2000])
            )
            if res.rowcount != 1:
                self._emit(
                    conn,
                    [
                        self._ti_event(
                            conn,
                            "report.rejected",
                            ti_id,
                            attempt,
                            None,
                            now,
                            {"state": state},
                            actor=worker_id,
                        )
                    ],
                )
                return False
            new = self._settle_ti(conn, ti_id, attempt, state, now)
            self._emit(
                conn,
                [
                    self._ti_event(
                        conn,
                        "ti." + new,
                        ti_id,
                        attempt,
                        None,
                        now,
                        {"attempt_state": state, "reason": reason[:500]},
                        actor=worker_id,
                    )
                ],
            )
        return True

    def _settle_ti(
        self, conn: Connection, ti_id: int, attempt: int, state: AttemptState, now: datetime
    ) -> TaskState:
        ti = m.TaskInstance
        values: dict[str, Any]
        if state is AttemptState.SUCCESS:
            new, values = TaskState.SUCCESS, {"ended_at": now}
        else:
            row = conn.execute(
                select(ti.failures, ti.retries, ti.retry_delay_s).where(ti.id == ti_id)
            ).one()
            nxt = after_failure(
                failures=row.failures,
                retries=row.retries,
                retry_delay_s=row.retry_delay_s,
                now=now,
                counts_as_failure=state is not AttemptState.LOST,
            )
            new = nxt.state
            values = {
                "failures": nxt.failures,
                "next_try_at": nxt.next_try_at,
                "ended_at": now if new.finished else None,
            }
        _checked(
            conn.execute(
                update(ti)
                .where(
                    ti.id == ti_id,
                    ti.attempt == attempt,
                    ti.state == TaskState.RUNNING,
                )
                .values(state=new, **values)
            ),
            1,
            "settle task instance",
        )
        return new

    # -- reading task instances, attempts, logs, events ---------------------------------------

    def task_instances(self, dag_id: str, run_id: str) -> list[TIRow]:
        with self._tx() as conn:
            rows = conn.execute(
                select(m.TaskInstance, m.DagRun.run_id)
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
                .order_by(m.TaskInstance.id)
            ).all()
        return [_ti_row(ti, ti.run_id) for ti in rows]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> TIRow:
        for ti in self.task_instances(dag_id, run_id):
            if ti.task_id == task_id:
                return ti
        self.run(dag_id, run_id)
        raise NotFound(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")

    def attempts(self, ti_id: int) -> list[AttemptRow]:
        with self._tx() as conn:
            rows = conn.execute(
                select(m.TaskAttempt)
                .where(m.TaskAttempt.ti_id == ti_id)
                .order_by(m.TaskAttempt.attempt)
            ).all()
        return [AttemptRow(**_pick(r, AttemptRow)) for r in rows]

    def running_attempts(self) -> list[AttemptRow]:
        with self._tx() as conn:
            rows = conn.execute(
                select(m.TaskAttempt).where(
                    m.TaskAttempt.state.in_([AttemptState.QUEUED, AttemptState.RUNNING])
                )
            ).all()
        return [AttemptRow(**_pick(r, AttemptRow)) for r in rows]

    def logs(self, ti_id: int, attempt: int) -> str:
        with self._tx() as conn:
            chunks = conn.execute(
                select(m.TaskLog.data)
                .where(m.TaskLog.ti_id == ti_id, m.TaskLog.attempt == attempt)
                .order_by(m.TaskLog.id)
            )
            return "".join(chunks.scalars())

    def events(
        self,
        *,
        kinds: Sequence[str] | None = None,
        dag_id: str | None = None,
        since_id: int = 0,
        limit: int = 1000,
    ) -> list[EventRow]:
        stmt = select(m.Event).where(m.Event.id > since_id).order_by(m.Event.id).limit(limit)
        if kinds:
            stmt = stmt.where(or_(*[m.Event.kind.like(k.replace("*", "%")) for k in kinds]))
        if dag_id:
            stmt = stmt.where(m.Event.dag_id == dag_id)
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        return [EventRow(**_pick(r, EventRow)) for r in rows]

    def count_tis(self) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(
                select(m.TaskInstance.state, func.count()).group_by(m.TaskInstance.state)
            ).all()
        return {state: n for state, n in rows}

    def clear(self, dag_id: str, run_id: str, task_ids: Sequence[str], now: datetime) -> int:
        """Reset finished task instances so they run again (as a new attempt) and reopen the run."""
        run = self.run(dag_id, run_id)
        ti = m.TaskInstance
        with self._tx() as conn:
            stmt = update(ti).where(
                ti.run_pk == run.pk, ti.state.not_in([TaskState.QUEUED, TaskState.RUNNING])
            )
            if task_ids:
                stmt = stmt.where(ti.task_id.in_(list(task_ids)))
            n = conn.execute(
                stmt.values(state=TaskState.NONE, failures=0, next_try_at=None, ended_at=None)
            ).rowcount
            if n:
                conn.execute(
                    update(m.DagRun)
                    .where(m.DagRun.id == run.pk)
                    .values(state=RunState.RUNNING, ended_at=None)
                )
                self._emit(
                    conn,
                    [
                        _event(
                            "ti.cleared",
                            self.actor,
                            now,
                            dag_id=dag_id,
                            run_id=run_id,
                            detail={"tasks": list(task_ids), "count": n},
                        )
                    ],
                )
        return n


# -- helpers ----------------------------------------------------------------------------------


def _mine(ti_id: int, attempt: int, worker_id: str) -> list[Any]:
    a = m.TaskAttempt
    return [
        a.ti_id == ti_id,
        a.attempt == attempt,
        a.worker_id == worker_id,
        a.state == AttemptState.RUNNING,
    ]


def _checked(res: Any, expected: int, what: str) -> None:
    if res.rowcount not in (expected, -1):
        raise MetastoreError(
            f"{what}: {res.rowcount} rows matched, expected {expected}; another writer changed "
            "them concurrently, the transaction was rolled back"
        )


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _pick(obj: Any, cls: type) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(cls)}


def _as_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _dag_values(d: DagRecord, now: datetime) -> dict[str, Any]:
    return dict(
        fileloc=d.fileloc,
        schedule=d.schedule,
        start_date=d.start_date,
        catchup=d.catchup,
        max_active_runs=d.max_active_runs,
        tags=json.dumps(d.tags),
        description=d.description,
        fingerprint=d.fingerprint,
        is_active=True,
        parsed_at=now,
    )


def _dag_row(r: Any) -> DagRow:
    return DagRow(
        r.dag_id,
        r.fileloc,
        r.schedule,
        r.is_paused,
        r.is_active,
        r.max_active_runs,
        r.last_fire_at,
        r.next_fire_at,
        json.loads(r.tags or "[]"),
    )


def _run_row(r: Any) -> RunRow:
    return RunRow(
        r.id,
        r.dag_id,
        r.run_id,
        r.run_type,
        r.state,
        json.loads(r.conf or "{}"),
        r.data_interval_start,
        r.data_interval_end,
        r.created_at,
        r.started_at,
        r.ended_at,
    )


def _ti_row(ti: Any, run_id: str) -> TIRow:
    return TIRow(
        ti.id,
        ti.dag_id,
        run_id,
        ti.task_id,
        ti.state,
        ti.attempt,
        ti.failures,
        ti.retries,
        ti.worker_id,
        ti.queued_at,
        ti.started_at,
        ti.ended_at,
    )
