"""Who is in the cluster: scheduler, worker and webserver rows, each renewed by a heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from haflow.metastore import models as m
from haflow.metastore.records import WebserverRow
from haflow.metastore.repository._base import _as_dict, _Base, _pick


class MemberQueries(_Base):
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

    def heartbeat_webserver(
        self,
        wid: str,
        *,
        hostname: str,
        pid: int,
        port: int,
        secret_fingerprint: str,
        now: datetime,
    ) -> None:
        values = dict(hostname=hostname, pid=pid, port=port, secret_fingerprint=secret_fingerprint)
        with self._tx() as conn:
            res = conn.execute(
                update(m.Webserver).where(m.Webserver.id == wid).values(heartbeat_at=now, **values)
            )
            if res.rowcount == 0:
                conn.execute(
                    insert(m.Webserver).values(id=wid, started_at=now, heartbeat_at=now, **values)
                )

    def remove_webserver(self, wid: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(m.Webserver).where(m.Webserver.id == wid))

    def webservers(self) -> list[WebserverRow]:
        with self._tx() as conn:
            rows = conn.execute(select(m.Webserver).order_by(m.Webserver.id)).all()
        return [WebserverRow(**_pick(r, WebserverRow)) for r in rows]
