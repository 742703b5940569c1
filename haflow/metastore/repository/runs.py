"""Runs: manual triggers, listings, and clearing task instances so they run again."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, case, func, insert, select, update

from haflow.core.clearing import JUST_THESE, ClearScope, UnknownTasks, tasks_to_clear
from haflow.core.ids import check_manual_run_id
from haflow.core.limits import TEXT_BYTES
from haflow.core.marking import MARKABLE_RUN_STATES, MARKABLE_TASK_STATES, run_marks
from haflow.core.params import resolve
from haflow.core.states import IN_FLIGHT_TASK_STATES, AttemptState, RunState, TaskState
from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import (
    RunRow,
)
from haflow.metastore.repository._base import _Base, _checked, _code_now, _event, _run_row


def _logical() -> Any:
    return func.coalesce(m.DagRun.data_interval_start, m.DagRun.created_at)


RUN_ORDERS: dict[str, Callable[[], Any]] = {
    "id": lambda: m.DagRun.id,
    "dag_run_id": lambda: m.DagRun.run_id,
    "state": lambda: m.DagRun.state,
    "start_date": lambda: m.DagRun.started_at,
    "end_date": lambda: m.DagRun.ended_at,
    "execution_date": _logical,
    "logical_date": _logical,
    "created_at": lambda: m.DagRun.created_at,
}
"""The orders runs can be listed in (Airflow's names), by the column (expression) of each."""


class RunQueries(_Base):
    def trigger(
        self, dag_id: str, conf: Mapping[str, Any], now: datetime, run_id: str | None = None
    ) -> RunRow:
        run_id = check_manual_run_id(run_id) if run_id is not None else f"manual__{now.isoformat()}"
        stored = json.dumps(dict(conf))  # ASCII: a byte a character
        if len(stored) > TEXT_BYTES:
            raise InvalidRequest(f"conf must be at most {TEXT_BYTES} bytes of JSON")
        self._dag(dag_id)
        with self._tx() as conn:
            structure = conn.execute(
                select(m.Dag.structure).where(m.Dag.dag_id == dag_id)
            ).scalar_one()
            resolve(json.loads(structure or "{}").get("params", {}), conf)  # InvalidParam
            exists = conn.execute(
                select(m.DagRun.id).where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
            ).first()
            if exists:
                raise Conflict(f"DAG {dag_id!r} already has a run {run_id!r}")
            conn.execute(
                insert(m.DagRun).values(
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type="manual",
                    state=RunState.QUEUED,
                    conf=stored,
                    created_at=now,
                    created_epoch=0,
                    code_hash=_code_now(dag_id),
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
                        # the run row holds the conf; the event repeats a small one only (a
                        # large one beside its key would not fit the TEXT of `detail` on MySQL)
                        detail={"conf": dict(conf)}
                        if len(stored) <= 4096
                        else {"bytes": len(stored)},
                    )
                ],
            )
        return self._run(dag_id, run_id)

    def external_state(
        self, dag_id: str, task_id: str | None, start: datetime, end: datetime
    ) -> str | None:
        """The state of DAG `dag_id`'s run for the data interval [start, end) (or of its task
        `task_id` there), None when it has no such run (or no such task)."""
        r, ti = m.DagRun, m.TaskInstance
        match = (r.dag_id == dag_id, r.data_interval_start == start, r.data_interval_end == end)
        query = (
            select(r.state).where(*match)
            if task_id is None
            else select(ti.state).join(r, r.id == ti.run_pk).where(*match, ti.task_id == task_id)
        )
        with self._tx() as conn:
            return conn.execute(query.limit(1)).scalar()

    def get(self, dag_id: str, run_id: str) -> RunRow:
        return self._run(dag_id, run_id)

    def find(
        self,
        dag_id: str | None = None,
        *,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        order: str = "-id",
    ) -> list[RunRow]:
        """A page of runs (of `dag_id`, in `state` or one of the states), in `order`: one of
        RUN_ORDERS, `-` first for descending; runs without the value (not started yet, say)
        come last either way, and ties go by id."""
        column = RUN_ORDERS.get(order.removeprefix("-"))
        if column is None:
            raise InvalidRequest(
                f"order {order!r}: choose one of {sorted(RUN_ORDERS)}, '-' first to reverse"
            )
        key = column()
        by = key.desc() if order.startswith("-") else key.asc()
        tie = m.DagRun.id.desc() if order.startswith("-") else m.DagRun.id.asc()
        missing = case((key.is_(None), 1), else_=0)  # portable NULLS LAST
        stmt = select(m.DagRun).order_by(missing, by, tie).limit(limit).offset(offset)
        if dag_id is not None:
            stmt = stmt.where(m.DagRun.dag_id == dag_id)
        if isinstance(state, str):
            stmt = stmt.where(m.DagRun.state == state)
        elif state:
            stmt = stmt.where(m.DagRun.state.in_(list(state)))
        with self._tx() as conn:
            return [_run_row(r) for r in conn.execute(stmt)]

    def clear(
        self,
        dag_id: str,
        run_id: str,
        task_ids: Sequence[str],
        now: datetime,
        scope: ClearScope = JUST_THESE,
        dry_run: bool = False,
        actor: str | None = None,
    ) -> list[str]:
        """Reset the run's finished task instances that `scope` covers (`core.clearing`) so
        they run again, each as a new attempt, and reopen the run; the task ids reset (with
        `dry_run`, those that would be, and nothing changes). No task ids: every task. The
        event names `actor` (the user; by default this repository's)."""
        run = self._run(dag_id, run_id)
        ti = m.TaskInstance
        with self._tx() as conn:
            states = {t: row.state for t, row in self._lock_run(conn, run.pk).items()}
            structure = conn.execute(
                select(m.Dag.structure).where(m.Dag.dag_id == dag_id)
            ).scalar_one_or_none()
            try:
                ids = tasks_to_clear(_edges(structure, states), states, task_ids, scope)
            except UnknownTasks as exc:
                raise InvalidRequest(f"DAG {dag_id!r} has no task {exc}") from exc
            if dry_run or not ids:
                return ids
            conn.execute(
                update(ti)
                .where(ti.run_pk == run.pk, ti.task_id.in_(ids))
                .values(
                    state=TaskState.NONE,
                    failures=0,
                    next_try_at=None,
                    sensing_since=None,
                    ended_at=None,
                )
            )
            _reopen(conn, run.pk)
            detail = {
                "tasks": ids,
                "count": len(ids),
                "asked": list(task_ids),
                **{k: v for k, v in asdict(scope).items() if v},
            }
            self._emit(
                conn,
                [
                    _event(
                        "ti.cleared",
                        actor or self.actor,
                        now,
                        dag_id=dag_id,
                        run_id=run_id,
                        detail=detail,
                    )
                ],
            )
        return ids

    def mark(
        self, dag_id: str, run_id: str, state: RunState, now: datetime, actor: str | None = None
    ) -> list[str]:
        """Mark the run success or failed, its task instances as `core.marking` says (an
        attempt in flight is ended, so its worker stops it and its report is rejected); the
        task ids changed. An event names `actor` (the user; by default this repository's)."""
        if state not in MARKABLE_RUN_STATES:
            raise InvalidRequest(f"a run is marked success or failed, not {state!r}")
        run = self._run(dag_id, run_id)
        with self._tx() as conn:
            tis = self._lock_run(conn, run.pk)
            changes = run_marks({t: row.state for t, row in tis.items()}, state)
            self._set_states(conn, tis, changes, now, actor)
            conn.execute(
                update(m.DagRun)
                .where(m.DagRun.id == run.pk)
                .values(state=state, ended_at=now, revision=m.DagRun.revision + 1)
            )
            detail = {"state": str(state), "was": run.state, "tasks": sorted(changes)}
            event = _event(
                "run.marked", actor or self.actor, now, dag_id=dag_id, run_id=run_id, detail=detail
            )
            self._emit(conn, [event])
        return sorted(changes)

    def mark_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        state: TaskState,
        now: datetime,
        actor: str | None = None,
    ) -> bool:
        """Mark one task instance success or failed (an attempt in flight is ended, so its
        worker stops it) and let the run go on from there: it runs again if it had ended.
        False when it already was in that state. An event names `actor`."""
        if state not in MARKABLE_TASK_STATES:
            raise InvalidRequest(f"a task instance is marked success or failed, not {state!r}")
        run = self._run(dag_id, run_id)
        with self._tx() as conn:
            tis = self._lock_run(conn, run.pk)
            if task_id not in tis:
                raise NotFound(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")
            was = tis[task_id].state
            if was is state:
                return False
            self._set_states(conn, tis, {task_id: state}, now, actor)
            _reopen(conn, run.pk)
            detail = {"state": str(state), "was": str(was)}
            event = _event(
                "ti.marked",
                actor or self.actor,
                now,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                detail=detail,
            )
            self._emit(conn, [event])
        return True

    @staticmethod
    def _lock_run(conn: Connection, pk: int) -> dict[str, _TIHead]:
        """Lock the run's row (first, as the leader's apply does: no deadlock between the
        two, and no task instance of it enters flight meanwhile); its task instances."""
        conn.execute(select(m.DagRun.id).where(m.DagRun.id == pk).with_for_update())
        ti = m.TaskInstance
        rows = conn.execute(select(ti.task_id, ti.id, ti.attempt, ti.state).where(ti.run_pk == pk))
        return {r.task_id: _TIHead(r.id, r.attempt, TaskState(r.state)) for r in rows}

    def _set_states(
        self,
        conn: Connection,
        tis: Mapping[str, _TIHead],
        changes: Mapping[str, TaskState],
        now: datetime,
        actor: str | None,
    ) -> None:
        """Move each task instance from the state read to its new one (conditionally: a
        worker may end an attempt meanwhile) and end the attempt of one in flight."""
        ti, a = m.TaskInstance, m.TaskAttempt
        for task_id, new in changes.items():
            row = tis[task_id]
            res = conn.execute(
                update(ti)
                .where(ti.id == row.id, ti.state == row.state)
                .values(state=new, ended_at=now, next_try_at=None, sensing_since=None)
            )
            _checked(res, 1, f"mark {task_id}")
            if row.state in IN_FLIGHT_TASK_STATES:
                reason = f"marked {new} by {actor or self.actor} while {row.state}"
                conn.execute(
                    update(a)
                    .where(a.ti_id == row.id, a.attempt == row.attempt, a.state == row.state)
                    .values(state=AttemptState.FAILED, ended_at=now, reason=reason)
                )


class _TIHead(NamedTuple):
    id: int
    attempt: int
    state: TaskState


def _reopen(conn: Connection, pk: int) -> None:
    """The run runs again; decisions the leader planned before this change are refused."""
    conn.execute(
        update(m.DagRun)
        .where(m.DagRun.id == pk)
        .values(state=RunState.RUNNING, ended_at=None, revision=m.DagRun.revision + 1)
    )


def _edges(structure: str | None, states: Mapping[str, TaskState]) -> dict[str, list[str]]:
    """Each task's direct upstream tasks, as the DAG's last parse recorded them, in its
    order; a task of the run that left the DAG since has none."""
    tasks = json.loads(structure or "{}").get("tasks", {})
    edges = {tid: list(t.get("upstream", [])) for tid, t in tasks.items()}
    for tid in states:
        edges.setdefault(tid, [])
    return edges
