"""Backfills: requests to run a DAG's intervals over a range, and how far they got.

A request only records what to do; the leader creates the runs (`SchedulingQueries.apply`,
`core.planner.backfill_runs`), so they are fenced like every run it creates, and an interval
the schedule or another backfill already ran keeps that one run.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, insert, select

from haflow.errors import InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import BackfillRow
from haflow.metastore.repository._base import _Base, _event
from haflow.metastore.repository.runs import RunQueries

MAX_ACTIVE_RUNS = 1000


class BackfillQueries(_Base):
    def create(
        self,
        dag_id: str,
        start: datetime,
        end: datetime,
        intervals: int,
        now: datetime,
        *,
        max_active_runs: int = 10,
        reset_existing: bool = False,
        actor: str | None = None,
    ) -> BackfillRow:
        """Ask the leader to run DAG `dag_id`'s `intervals` intervals starting in [start,
        end]. With `reset_existing`, the runs already there for them that ended are cleared
        first, so they run again (one in flight is left alone). First, before the backfill is
        recorded: a leader that saw the backfill while its runs still showed their old end
        would find every interval ended and mark it done, and `--wait` would return while the
        runs ran again."""
        if end < start:
            raise InvalidRequest(f"the backfill ends ({end.isoformat()}) before it starts")
        if not 1 <= max_active_runs <= MAX_ACTIVE_RUNS:
            raise InvalidRequest(f"max_active_runs must be from 1 to {MAX_ACTIVE_RUNS}")
        if intervals < 1:
            raise InvalidRequest("the range holds no interval of the DAG's schedule")
        if reset_existing:  # a DAG that is missing or has no schedule has no such run
            self._reset(dag_id, start, end, now, actor)
        with self._tx() as conn:
            dag = conn.execute(select(m.Dag.schedule).where(m.Dag.dag_id == dag_id)).first()
            if dag is None:
                raise NotFound(f"no DAG {dag_id!r}")
            if dag.schedule is None:
                raise InvalidRequest(f"DAG {dag_id!r} has no schedule: it has no intervals")
            res = conn.execute(
                insert(m.Backfill).values(
                    dag_id=dag_id,
                    start=start,
                    end=end,
                    intervals=intervals,
                    max_active_runs=max_active_runs,
                    reset_existing=reset_existing,
                    state="running",
                    created_by=actor or self.actor,
                    created_at=now,
                )
            )
            bid = int(res.inserted_primary_key[0])  # type: ignore[index]
            detail = {
                "backfill": bid,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "intervals": intervals,
                "reset_existing": reset_existing,
            }
            event = _event(
                "backfill.created", actor or self.actor, now, dag_id=dag_id, detail=detail
            )
            self._emit(conn, [event])
        return self.get(int(bid))

    def _reset(
        self, dag_id: str, start: datetime, end: datetime, now: datetime, actor: str | None
    ) -> None:
        r = m.DagRun
        with self._tx() as conn:
            ended = (
                conn.execute(
                    select(r.run_id).where(
                        r.dag_id == dag_id,
                        r.scheduled_fire_at.is_not(None),
                        r.data_interval_start >= start,
                        r.data_interval_start <= end,
                        r.state.in_(["success", "failed"]),
                    )
                )
                .scalars()
                .all()
            )
        runs = RunQueries(self.engine, cluster=self.cluster, actor=self.actor)
        for run_id in ended:
            runs.clear(dag_id, run_id, [], now, actor=actor)

    def get(self, bid: int) -> BackfillRow:
        r = m.DagRun
        with self._tx() as conn:
            b = conn.execute(select(m.Backfill).where(m.Backfill.id == bid)).first()
            if b is None:
                raise NotFound(f"no backfill {bid}")
            states = Counter(
                {
                    state: int(n)
                    for state, n in conn.execute(
                        select(r.state, func.count())
                        .where(
                            r.dag_id == b.dag_id,
                            r.scheduled_fire_at.is_not(None),
                            r.data_interval_start >= b.start,
                            r.data_interval_start <= b.end,
                        )
                        .group_by(r.state)
                    )
                }
            )
            created = conn.execute(select(func.count()).where(r.backfill_id == bid)).scalar_one()
        return BackfillRow(
            b.id,
            b.dag_id,
            b.start,
            b.end,
            b.intervals,
            b.max_active_runs,
            bool(b.reset_existing),
            b.state,
            b.created_by,
            b.created_at,
            b.ended_at,
            runs_created=int(created),
            succeeded=states.get("success", 0),
            failed=states.get("failed", 0),
            unfinished=states.get("queued", 0) + states.get("running", 0),
        )

    def list(self, dag_id: str | None = None, limit: int = 100) -> list[BackfillRow]:
        q = select(m.Backfill.id).order_by(m.Backfill.id.desc()).limit(limit)
        if dag_id is not None:
            q = q.where(m.Backfill.dag_id == dag_id)
        with self._tx() as conn:
            ids = conn.execute(q).scalars().all()
        return [self.get(int(i)) for i in ids]
