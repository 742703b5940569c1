"""Read-only views for people: a DAG's detail, state counts, the runs x tasks grid, event pages.

Every list here is paged (limit/offset) and has a matching count, so the web and the REST API
never load a whole table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select

from haflow.errors import NotFound
from haflow.metastore import models as m
from haflow.metastore.records import AttemptRow, DagDetail, EventRow, RunRow, TIRow
from haflow.metastore.repository._base import _attempt_rows, _Base, _pick, _run_row, _ti_row

Counts = dict[str, dict[str, int]]


class OverviewQueries(_Base):
    def dag_detail(self, dag_id: str) -> DagDetail:
        found = self.dag_details(dag_id=dag_id, active_only=False)
        if not found:
            raise NotFound(f"no DAG {dag_id!r} in the metastore")
        return found[0]

    def dag_details(
        self, *, dag_id: str | None = None, active_only: bool = True
    ) -> list[DagDetail]:
        """DAGs with what the scheduler parsed of them, in one query, ordered by id."""
        stmt = select(m.Dag).order_by(m.Dag.dag_id)
        if dag_id is not None:
            stmt = stmt.where(m.Dag.dag_id == dag_id)
        if active_only:
            stmt = stmt.where(m.Dag.is_active.is_(True))
        with self._tx() as conn:
            return [_detail(r) for r in conn.execute(stmt)]

    def run_state_counts(self, dag_id: str | None = None) -> Counts:
        """{dag_id: {run state: number of runs}}, of one DAG or all."""
        r = m.DagRun
        stmt = select(r.dag_id, r.state, func.count()).group_by(r.dag_id, r.state)
        if dag_id is not None:
            stmt = stmt.where(r.dag_id == dag_id)
        return self._counts(stmt)

    def task_state_counts(self, dag_id: str | None = None) -> Counts:
        """{dag_id: {task instance state: number}} over all runs."""
        ti = m.TaskInstance
        stmt = select(ti.dag_id, ti.state, func.count()).group_by(ti.dag_id, ti.state)
        if dag_id is not None:
            stmt = stmt.where(ti.dag_id == dag_id)
        return self._counts(stmt)

    def _counts(self, stmt: Any) -> Counts:
        out: Counts = {}
        with self._tx() as conn:
            for dag_id, state, n in conn.execute(stmt):
                out.setdefault(dag_id, {})[state] = int(n)
        return out

    def latest_runs(self) -> dict[str, RunRow]:
        """Each DAG's newest run."""
        newest = select(func.max(m.DagRun.id)).group_by(m.DagRun.dag_id).scalar_subquery()
        with self._tx() as conn:
            rows = conn.execute(select(m.DagRun).where(m.DagRun.id.in_(newest))).all()
        return {r.dag_id: _run_row(r) for r in rows}

    def count_runs(
        self, dag_id: str | None = None, state: str | Sequence[str] | None = None
    ) -> int:
        """How many runs (of `dag_id`, in `state` or one of the states) there are."""
        stmt = select(func.count()).select_from(m.DagRun)
        if dag_id is not None:
            stmt = stmt.where(m.DagRun.dag_id == dag_id)
        if isinstance(state, str):
            stmt = stmt.where(m.DagRun.state == state)
        elif state:
            stmt = stmt.where(m.DagRun.state.in_(list(state)))
        with self._tx() as conn:
            return int(conn.execute(stmt).scalar_one())

    def task_instances_of_runs(self, run_pks: Sequence[int]) -> list[TIRow]:
        if not run_pks:
            return []
        with self._tx() as conn:
            rows = conn.execute(
                select(m.TaskInstance, m.DagRun.run_id)
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .where(m.TaskInstance.run_pk.in_(list(run_pks)))
            ).all()
        return [_ti_row(ti, ti.run_id) for ti in rows]

    def run_attempts(self, dag_id: str, run_id: str) -> list[tuple[str, AttemptRow]]:
        """(task id, attempt) of every attempt of a run, in the order they were queued."""
        with self._tx() as conn:
            rows = conn.execute(
                _attempt_rows(m.TaskInstance.task_id)
                .join(m.TaskInstance, m.TaskInstance.id == m.TaskAttempt.ti_id)
                .join(m.DagRun, m.DagRun.id == m.TaskInstance.run_pk)
                .where(m.DagRun.dag_id == dag_id, m.DagRun.run_id == run_id)
                .order_by(m.TaskAttempt.queued_at, m.TaskAttempt.id)
            ).all()
        return [(r.task_id, AttemptRow(**_pick(r, AttemptRow))) for r in rows]

    def recent_events(
        self,
        *,
        kinds: Sequence[str] | None = None,
        dag_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> tuple[list[EventRow], int]:
        """A page of events, newest first (or oldest first), and how many match in all."""
        cond = []
        if kinds:
            cond.append(or_(*[m.Event.kind.like(k.replace("*", "%")) for k in kinds]))
        if dag_id:
            cond.append(m.Event.dag_id == dag_id)
        order = m.Event.id.asc() if oldest_first else m.Event.id.desc()
        page = select(m.Event).where(*cond).order_by(order).limit(limit)
        with self._tx() as conn:
            rows = conn.execute(page.offset(offset)).all()
            total = conn.execute(select(func.count()).select_from(m.Event).where(*cond))
            n = int(total.scalar_one())
        return [EventRow(**_pick(r, EventRow)) for r in rows], n


def _detail(r: Any) -> DagDetail:
    return DagDetail(
        dag_id=r.dag_id,
        fileloc=r.fileloc,
        schedule=r.schedule,
        is_paused=r.is_paused,
        is_active=r.is_active,
        max_active_runs=r.max_active_runs,
        catchup=r.catchup,
        start_date=r.start_date,
        last_fire_at=r.last_fire_at,
        parsed_at=r.parsed_at,
        tags=json.loads(r.tags or "[]"),
        description=r.description or "",
        structure=json.loads(r.structure or "{}"),
        timezone=r.timezone,
        end_date=r.end_date,
    )
