"""Reads behind the metastore-derived metrics: small aggregates the leader exports at scrape
time, and the outgoing leader's last sign of life that a new leader's failover time starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from haflow.core.states import AttemptState, RunState
from haflow.metastore import models as m
from haflow.metastore.repository._base import _Base


@dataclass(frozen=True)
class OutgoingLeader:
    epoch: int
    holder: str
    last_sign: datetime  # its last heartbeat or fenced write, whichever came later
    resigned: bool  # it recorded the end of its epoch (a graceful handover)


@dataclass(frozen=True)
class QueuedAttempts:
    queue: str
    count: int
    oldest: datetime | None


class MetricsQueries(_Base):
    def outgoing_leader(self) -> OutgoingLeader | None:
        """Who led last and when it was last seen; None before the cluster's first leader."""
        with self._tx() as conn:
            row = conn.execute(select(m.Leader).where(m.Leader.cluster == self.cluster)).first()
            if row is None:
                return None
            beat = conn.execute(
                select(m.Scheduler.heartbeat_at).where(m.Scheduler.id == row.holder)
            ).scalar()
            resigned = conn.execute(
                select(m.Event.id)
                .where(
                    m.Event.kind == "leader.resigned",
                    m.Event.epoch == row.epoch,
                    m.Event.actor == row.holder,
                )
                .limit(1)
            ).first()
        last = row.renewed_at if beat is None else max(beat, row.renewed_at)
        return OutgoingLeader(row.epoch, row.holder, last, resigned is not None)

    def active_task_instance_states(self) -> dict[str, int]:
        """Task instances of unfinished runs, counted by state."""
        ti = m.TaskInstance
        with self._tx() as conn:
            rows = conn.execute(
                select(ti.state, func.count())
                .join(m.DagRun, m.DagRun.id == ti.run_pk)
                .where(m.DagRun.state.in_([RunState.QUEUED, RunState.RUNNING]))
                .group_by(ti.state)
            ).all()
        return {state: n for state, n in rows}

    def active_run_states(self) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(
                select(m.DagRun.state, func.count())
                .where(m.DagRun.state.in_([RunState.QUEUED, RunState.RUNNING]))
                .group_by(m.DagRun.state)
            ).all()
        return {state: n for state, n in rows}

    def queued_attempts(self) -> list[QueuedAttempts]:
        """Attempts committed as queued and not yet claimed, by queue, with the oldest's time."""
        a, ti = m.TaskAttempt, m.TaskInstance
        with self._tx() as conn:
            rows = conn.execute(
                select(ti.queue, func.count(), func.min(a.queued_at))
                .join(ti, ti.id == a.ti_id)
                .where(a.state == AttemptState.QUEUED)
                .group_by(ti.queue)
            ).all()
        return [QueuedAttempts(q, n, oldest) for q, n, oldest in rows]

    def worker_beats(self, since: datetime) -> list[tuple[str, str, datetime]]:
        """(worker id, state, last heartbeat) of workers heard from after `since`."""
        w = m.Worker
        with self._tx() as conn:
            rows = conn.execute(
                select(w.id, w.state, w.heartbeat_at).where(w.heartbeat_at >= since)
            ).all()
        return [(r.id, r.state, r.heartbeat_at) for r in rows]

    def import_errors(self) -> int:
        """DAG files that failed to import at the leader's last parse."""
        with self._tx() as conn:
            return int(conn.execute(select(func.count(m.ImportError_.id))).scalar_one())
