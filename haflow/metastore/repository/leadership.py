"""The leader row and its epoch, scheduler and worker registry rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from haflow.metastore import models as m
from haflow.metastore.records import (
    LeaderRow,
)
from haflow.metastore.repository._base import (
    _as_dict,
    _Base,
    _event,
    _pick,
)


class LeadershipQueries(_Base):
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
        """Record the end of `epoch`; a leadership transaction like any other, so it is fenced:
        a deposed leader learns here that its epoch is gone (FencedOut)."""
        with self._tx(epoch, now) as conn:
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
