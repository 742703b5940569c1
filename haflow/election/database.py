"""The database elector: whoever holds the metastore's leader lock leads.

The lock (see metastore.repository.locks) lives on its own connection. While holding, `poll`
verifies it every `heartbeat_interval_s`, which also keeps the session busy so the server does not
drop it; a failed verify gives leadership up at once and closes the connection, so the server
frees whatever it still holds. While not holding, `poll` tries the lock every `retry_interval_s`.
`poll` never waits on the lock, only on one short round trip to the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from haflow.election.base import Elector
from haflow.errors import HaflowError
from haflow.metastore.repository.locks import LeaderLock, make_lock

log = logging.getLogger(__name__)

LockFactory = Callable[[str, str, str, float], LeaderLock]


class DatabaseElector(Elector):
    mode = "database"

    def __init__(
        self,
        url: str,
        cluster: str,
        holder: str,
        *,
        lock_timeout_s: float = 4.0,
        retry_interval_s: float = 0.5,
        heartbeat_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        lock_factory: LockFactory = make_lock,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.holder = holder
        self.lock_timeout_s = lock_timeout_s
        self.retry_interval_s = retry_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self._monotonic = monotonic
        self._lock_factory = lock_factory
        self._lock: LeaderLock | None = None
        self._holding = False
        self._next_try = 0.0
        self._next_verify = 0.0

    @property
    def holding(self) -> bool:
        return self._holding

    def start(self) -> None:
        if self._lock is None:
            self._lock = self._lock_factory(
                self.url, self.cluster, self.holder, self.lock_timeout_s
            )
        self._next_try = self._monotonic()

    def poll(self, now: datetime) -> bool:
        if self._lock is None:
            return False
        t = self._monotonic()
        if self._holding:
            if t >= self._next_verify:
                self._heartbeat(self._lock, t)
        elif t >= self._next_try:
            self._try_acquire(self._lock, t)
        return self._holding

    def release(self) -> None:
        """Give the lock up but stay a candidate, after a pause that lets a standby take it."""
        if self._lock is None or not self._holding:
            return
        self._holding = False
        # a standby retries every interval; staying out for two lets it win the lock
        self._next_try = self._monotonic() + 2 * self.retry_interval_s
        try:
            self._lock.release()
            log.info("database lock of cluster %r released by %s", self.cluster, self.holder)
        except HaflowError as exc:
            log.warning("releasing the database lock failed (%s); dropping its connection", exc)
            self._lock.close()

    def stop(self) -> None:
        if self._lock is None:
            return
        try:
            self.release()
        finally:
            self._lock.close()
            self._lock = None

    def _try_acquire(self, lock: LeaderLock, t: float) -> None:
        self._next_try = t + self.retry_interval_s
        try:
            acquired = lock.try_acquire()
        except HaflowError as exc:
            log.warning("database lock of cluster %r: cannot try it: %s", self.cluster, exc)
            return
        if acquired:
            self._holding = True
            self._next_verify = t + self.heartbeat_interval_s
            log.info("database lock of cluster %r acquired by %s", self.cluster, self.holder)

    def _heartbeat(self, lock: LeaderLock, t: float) -> None:
        self._next_verify = t + self.heartbeat_interval_s
        try:
            still_ours = lock.verify()
            reason = "the server no longer has it held by our session"
        except Exception as exc:  # whatever went wrong, an unverified lock is not ours
            still_ours = False
            reason = f"verifying it failed: {exc}"
        if not still_ours:
            self._lose(lock, t, reason)

    def _lose(self, lock: LeaderLock, t: float, reason: str) -> None:
        self._holding = False
        self._next_try = t + self.retry_interval_s
        log.warning("database lock of cluster %r lost by %s: %s", self.cluster, self.holder, reason)
        try:
            lock.close()
        except Exception:
            log.warning("closing the lost lock's connection failed", exc_info=True)
