"""Reading task instances, attempts, logs and events; clearing task instances."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update

from haflow.core.states import AttemptState, RunState, TaskState
from haflow.errors import (
    NotFound,
)
from haflow.metastore import models as m
from haflow.metastore.records import (
    AttemptRow,
    EventRow,
    TIRow,
)
from haflow.metastore.repository._base import (
    _event,
    _pick,
    _ti_row,
)
from haflow.metastore.repository.runs import RunQueries


class HistoryQueries(RunQueries):
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
