"""The leader row and its epoch: taking it, resigning it, reading it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import insert, select, text, update

from haflow.errors import BackendUnavailable
from haflow.metastore import models as m
from haflow.metastore.records import (
    LeaderRow,
)
from haflow.metastore.repository._base import (
    _Base,
    _event,
    _pick,
)

log = logging.getLogger(__name__)
LOCK_WAIT_S = 1.0
LOCK_TRIES = 10
END_HOLDERS = """
SELECT l.pid, pg_terminate_backend(l.pid) AS ended
FROM pg_locks l
WHERE l.locktype = 'relation' AND l.relation = 'leader'::regclass AND l.granted
  AND l.mode IN ('RowExclusiveLock', 'RowShareLock') AND l.pid <> pg_backend_pid()
"""


def _lock_timed_out(exc: BackendUnavailable) -> bool:
    orig = getattr(exc.__cause__, "orig", None)
    return getattr(orig, "sqlstate", None) == "55P03"  # lock_not_available


class LeadershipQueries(_Base):
    def take(self, holder: str, mode: str, now: datetime, reason: str = "") -> int:
        """Increment the epoch and name `holder` leader; returns the new epoch.

        Called only by the holder of the election's database lock, so whoever still holds the
        `leader` row lock is a deposed leader frozen or cut off inside a transaction. On
        PostgreSQL its session may sit there indefinitely (a freeze in the middle of a pipelined
        statement is `active`, which no idle timeout ends), so after LOCK_WAIT_S the new leader
        ends those sessions itself; their transactions roll back, so fencing is untouched.
        """
        for _ in range(LOCK_TRIES):
            try:
                return self._take_leadership(holder, mode, now, reason)
            except BackendUnavailable as exc:
                if not _lock_timed_out(exc):
                    raise
                self._end_leader_row_holders(holder, now)
        raise BackendUnavailable(
            f"could not lock the leader row of cluster {self.cluster!r} in "
            f"{LOCK_TRIES} tries; another session keeps it (see pg_locks)"
        )

    def _take_leadership(self, holder: str, mode: str, now: datetime, reason: str) -> int:
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'"))
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

    def _end_leader_row_holders(self, holder: str, now: datetime) -> None:
        """End the other sessions holding a write lock on `leader` (PostgreSQL only)."""
        with self._tx() as conn:
            if conn.dialect.name != "postgresql":
                return
            ended = conn.execute(text(END_HOLDERS)).all()
            pids = [r.pid for r in ended if r.ended]
            log.warning("ended sessions %s that kept the leader row locked", pids)
            self._emit(conn, [_event("leader.sessions_ended", holder, now, detail={"pids": pids})])

    def resign(self, epoch: int, holder: str, now: datetime, reason: str) -> None:
        """Record the end of `epoch`; a leadership transaction like any other, so it is fenced:
        a deposed leader learns here that its epoch is gone (FencedOut)."""
        with self._tx(epoch, now) as conn:
            self._emit(
                conn,
                [_event("leader.resigned", holder, now, epoch=epoch, detail={"reason": reason})],
            )

    def current(self) -> LeaderRow | None:
        with self._tx() as conn:
            row = conn.execute(select(m.Leader).where(m.Leader.cluster == self.cluster)).first()
        return None if row is None else LeaderRow(**_pick(row, LeaderRow))
