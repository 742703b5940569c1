"""Reading task instances, attempts, logs and events."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, tuple_

from haflow.core.states import AttemptState
from haflow.errors import (
    NotFound,
)
from haflow.metastore import models as m
from haflow.metastore.records import (
    AttemptRow,
    EventRow,
    LogPage,
    TIRow,
)
from haflow.metastore.repository._base import (
    _attempt_rows,
    _Base,
    _pick,
    _ti_row,
)


class HistoryQueries(_Base):
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
        self._run(dag_id, run_id)
        raise NotFound(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")

    def attempts(self, ti_id: int) -> list[AttemptRow]:
        """A task instance's attempts, each with its result (if it succeeded with one)."""
        with self._tx() as conn:
            rows = conn.execute(
                _attempt_rows().where(m.TaskAttempt.ti_id == ti_id).order_by(m.TaskAttempt.attempt)
            ).all()
        return [AttemptRow(**_pick(r, AttemptRow)) for r in rows]

    def running_attempts(self, runs: Sequence[tuple[str, str]] | None = None) -> list[AttemptRow]:
        """The attempts queued or running, of the runs `runs` ((dag_id, run_id) pairs) only
        when given."""
        query = _attempt_rows().where(
            m.TaskAttempt.state.in_([AttemptState.QUEUED, AttemptState.RUNNING])
        )
        if runs is not None:
            if not runs:
                return []
            query = (
                query.join(m.TaskInstance, m.TaskInstance.id == m.TaskAttempt.ti_id)
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .where(tuple_(m.DagRun.dag_id, m.DagRun.run_id).in_(list(runs)))
            )
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [AttemptRow(**_pick(r, AttemptRow)) for r in rows]

    def logs(self, ti_id: int, attempt: int) -> str:
        with self._tx() as conn:
            chunks = conn.execute(
                select(m.TaskLog.data)
                .where(m.TaskLog.ti_id == ti_id, m.TaskLog.attempt == attempt)
                .order_by(m.TaskLog.id)
            )
            return "".join(chunks.scalars())

    def log_since(self, ti_id: int, attempt: int, cursor: int = 0) -> LogPage:
        """What attempt `attempt` of task instance `ti_id` logged after `cursor` (0: from the
        start). Whether it had ended is read first: its report commits its last output with
        its end, so an ended page is complete. A heartbeat and a report lock the attempt's row
        before they append its output, so its chunks' ids grow in commit order. (Output a
        zombie sends after its attempt ended is kept, but not followed.)"""
        with self._tx() as conn:
            state = conn.execute(
                select(m.TaskAttempt.state).where(
                    m.TaskAttempt.ti_id == ti_id, m.TaskAttempt.attempt == attempt
                )
            ).scalar()
            rows = conn.execute(
                select(m.TaskLog.id, m.TaskLog.data)
                .where(
                    m.TaskLog.ti_id == ti_id,
                    m.TaskLog.attempt == attempt,
                    m.TaskLog.id > cursor,
                )
                .order_by(m.TaskLog.id)
            ).all()
        ended = state is None or state not in (AttemptState.QUEUED, AttemptState.RUNNING)
        last = rows[-1].id if rows else cursor
        return LogPage("".join(r.data for r in rows), last, ended)

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
