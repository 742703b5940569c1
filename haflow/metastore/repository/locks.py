"""The database leader locks, each on its own connection, never one of the metastore's pool.

PostgreSQL and MySQL/MariaDB hold the lock for as long as the server keeps the session, so the
session is given short server-side limits (PostgreSQL `idle_session_timeout` and TCP timeouts,
MySQL `wait_timeout`) and is kept busy by `verify()`: the server drops the session, and the lock
with it, within about `timeout_s` of the holder falling silent (frozen, partitioned or killed).
SQLite (standalone only) has no sessions to watch; there the lock is a lease row that `verify()`
renews and that anyone may take once it has expired.

A lock never proves leadership on its own: the holder's writes are fenced by the epoch.
"""

from __future__ import annotations

import hashlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Connection, create_engine, delete, insert, or_, select, text, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from haflow.errors import BackendUnavailable
from haflow.metastore import engine as metastore_engine
from haflow.metastore import models as m

log = logging.getLogger(__name__)

WallClock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def advisory_key(cluster: str) -> int:
    """The PostgreSQL advisory-lock key of `cluster`: a stable signed 64-bit hash."""
    digest = hashlib.sha256(f"haflow:{cluster}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_name(cluster: str, database: str) -> str:
    """The MySQL/MariaDB GET_LOCK name of `cluster` in `database` (the server allows 64
    characters). A named lock is the whole server's, not one database's as PostgreSQL's
    advisory locks are: two metastores on one server, each with a cluster of the same name,
    must not share a leader lock."""
    name = f"haflow:{database}:{cluster}"
    if len(name) <= 64:
        return name
    return "haflow:" + hashlib.sha256(f"{database}:{cluster}".encode()).hexdigest()[:57]


def _server(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}"
    where = ",".join(f"{host}:{port}" for host, port in metastore_engine.servers(url))
    return f"{url.get_backend_name()} server {where}"


class LeaderLock(ABC):
    """One candidate's hold on the leader lock of one cluster."""

    def __init__(self, url: URL, cluster: str, holder: str, timeout_s: float) -> None:
        self.url = url
        self.cluster = cluster
        self.holder = holder
        self.timeout_s = timeout_s
        self.server = _server(url)

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock if it is free (or already ours); never waits for it."""

    @abstractmethod
    def verify(self) -> bool:
        """True while the lock is still ours. Also the heartbeat that keeps the hold alive."""

    @abstractmethod
    def release(self) -> None:
        """Let the lock go, if ours; the connection stays open for another try."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection; the server then frees a lock still held by it."""


class _SessionLock(LeaderLock):
    """A lock that lives as long as one server session: losing the session loses the lock."""

    ACQUIRE: ClassVar[str]
    VERIFY: ClassVar[str]
    RELEASE: ClassVar[str]

    def __init__(self, url: URL, cluster: str, holder: str, timeout_s: float) -> None:
        super().__init__(url, cluster, holder, timeout_s)
        self._engine = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args=self._connect_args(),
        )
        self._conn: Connection | None = None

    @abstractmethod
    def _connect_args(self) -> dict[str, Any]: ...

    @abstractmethod
    def _limit_session(self, conn: Connection) -> None:
        """Set the session limits that make the server drop a silent holder."""

    @abstractmethod
    def _params(self) -> dict[str, Any]: ...

    def try_acquire(self) -> bool:
        reused = self._conn is not None
        try:
            return self._ask(self.ACQUIRE)
        except BackendUnavailable:
            if not reused:
                raise
            # the kept connection may have been dropped by the server while we were idle
            return self._ask(self.ACQUIRE)

    def verify(self) -> bool:
        if self._conn is None:
            return False
        try:
            return self._ask(self.VERIFY)
        except BackendUnavailable as exc:
            log.warning("leader lock of cluster %r: cannot verify: %s", self.cluster, exc)
            return False  # the session is gone, and the lock with it

    def release(self) -> None:
        if self._conn is not None:
            self._ask(self.RELEASE)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except DBAPIError:
                log.debug("closing the leader-lock connection failed", exc_info=True)
        self._engine.dispose()

    def _ask(self, sql: str) -> bool:
        conn = self._connection()
        try:
            return bool(conn.execute(text(sql), self._params()).scalar())
        except DBAPIError as exc:
            self._drop(conn)
            raise BackendUnavailable(
                f"leader-lock connection to the {self.server} failed: {exc.orig}; "
                "the server frees the lock when it drops the session"
            ) from exc

    def _connection(self) -> Connection:
        if self._conn is None:
            try:
                conn = self._engine.connect()
            except DBAPIError as exc:
                raise BackendUnavailable(
                    f"cannot open the leader-lock connection to the {self.server}: {exc.orig}"
                ) from exc
            try:
                self._limit_session(conn)
            except DBAPIError as exc:
                self._drop(conn)
                raise BackendUnavailable(
                    f"cannot set the session limits of the leader lock on the {self.server}: "
                    f"{exc.orig}"
                ) from exc
            self._conn = conn
        return self._conn

    def _drop(self, conn: Connection) -> None:
        # invalidate closes the socket without the usual reset round trip on a dead session
        conn.invalidate()
        conn.close()
        self._conn = None


_PG_OURS = """EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
      AND CAST(classid AS bigint) = :hi AND CAST(objid AS bigint) = :lo AND objsubid = 1)"""


class PostgresAdvisoryLock(_SessionLock):
    """A session-level `pg_try_advisory_lock`, never stacked: a held lock is reported, not retaken.

    The client's TCP keepalives and `tcp_user_timeout` bound how long a query waits on a dead
    server; the session's `idle_session_timeout` and server-side TCP limits make the server drop
    a frozen or vanished client, which frees the lock.
    """

    ACQUIRE = f"SELECT CASE WHEN {_PG_OURS} THEN true ELSE pg_try_advisory_lock(:key) END"
    VERIFY = f"SELECT {_PG_OURS}"
    RELEASE = f"SELECT CASE WHEN {_PG_OURS} THEN pg_advisory_unlock(:key) ELSE false END"

    def __init__(self, url: URL, cluster: str, holder: str, timeout_s: float) -> None:
        super().__init__(url, cluster, holder, timeout_s)
        self.key = advisory_key(cluster)

    def _connect_args(self) -> dict[str, Any]:
        return {
            "connect_timeout": max(2, math.ceil(self.timeout_s)),
            "application_name": f"haflow-lock:{self.holder}"[:63],
            "keepalives": 1,
            "keepalives_idle": 1,
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": int(self.timeout_s * 1000),
        }

    def _limit_session(self, conn: Connection) -> None:
        ms = str(int(self.timeout_s * 1000))
        count = str(max(1, math.ceil(self.timeout_s) - 1))
        settings = {
            "idle_session_timeout": ms,
            "tcp_keepalives_idle": "1",
            "tcp_keepalives_interval": "1",
            "tcp_keepalives_count": count,
            "tcp_user_timeout": ms,
        }
        for name, value in settings.items():
            conn.execute(text("SELECT set_config(:n, :v, false)"), {"n": name, "v": value})

    def _params(self) -> dict[str, Any]:
        return {"key": self.key, "hi": (self.key >> 32) & 0xFFFFFFFF, "lo": self.key & 0xFFFFFFFF}


class MySqlNamedLock(_SessionLock):
    """A MySQL/MariaDB `GET_LOCK`, never stacked (GET_LOCK is re-entrant within a session)."""

    ACQUIRE = (
        "SELECT CASE WHEN IS_USED_LOCK(:name) = CONNECTION_ID() THEN 1 ELSE GET_LOCK(:name, 0) END"
    )
    VERIFY = "SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"
    RELEASE = "SELECT RELEASE_LOCK(:name)"

    def __init__(self, url: URL, cluster: str, holder: str, timeout_s: float) -> None:
        super().__init__(url, cluster, holder, timeout_s)
        self.name = lock_name(cluster, url.database or "")

    def _connect_args(self) -> dict[str, Any]:
        seconds = max(1, math.ceil(self.timeout_s))
        return {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}

    def _limit_session(self, conn: Connection) -> None:
        seconds = max(1, math.ceil(self.timeout_s))
        conn.execute(text(f"SET SESSION wait_timeout = {seconds}"))
        conn.execute(text(f"SET SESSION interactive_timeout = {seconds}"))

    def _params(self) -> dict[str, Any]:
        return {"name": self.name}


class LeaseRowLock(LeaderLock):
    """A lease row in `election_lease` (SQLite): ours until `expires_at`, renewed by verify.

    Leases use the wall clock, so candidates on one host (all SQLite allows) agree on expiry.
    """

    def __init__(
        self, url: URL, cluster: str, holder: str, timeout_s: float, clock: WallClock = _utcnow
    ) -> None:
        super().__init__(url, cluster, holder, timeout_s)
        self._clock = clock
        self._engine: Engine | None = None

    def try_acquire(self) -> bool:
        now = self._clock()
        lease = m.ElectionLease
        with self._tx() as conn:
            taken = conn.execute(
                update(lease)
                .where(
                    lease.cluster == self.cluster,
                    or_(lease.holder == self.holder, lease.expires_at <= now),
                )
                .values(holder=self.holder, expires_at=self._expiry(now))
            ).rowcount
            if taken:
                return True
            if conn.execute(select(lease.cluster).where(lease.cluster == self.cluster)).first():
                return False
            conn.execute(
                insert(lease).values(
                    cluster=self.cluster, holder=self.holder, expires_at=self._expiry(now)
                )
            )
            return True

    def verify(self) -> bool:
        now = self._clock()
        lease = m.ElectionLease
        with self._tx() as conn:
            renewed = conn.execute(
                update(lease)
                .where(
                    lease.cluster == self.cluster,
                    lease.holder == self.holder,
                    lease.expires_at > now,
                )
                .values(expires_at=self._expiry(now))
            ).rowcount
        return renewed == 1

    def release(self) -> None:
        lease = m.ElectionLease
        with self._tx() as conn:
            conn.execute(
                delete(lease).where(lease.cluster == self.cluster, lease.holder == self.holder)
            )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.timeout_s)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        if self._engine is None:
            url = self.url.render_as_string(hide_password=False)
            self._engine = metastore_engine.create_engine(url, sqlite_busy_s=self.timeout_s / 2)
        try:
            with self._engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise BackendUnavailable(
                f"leader lease of cluster {self.cluster!r} in the {self.server} failed: {exc.orig}"
            ) from exc


def make_lock(
    url: str, cluster: str, holder: str, timeout_s: float, *, clock: WallClock = _utcnow
) -> LeaderLock:
    """The leader lock for the metastore at `url`; `clock` is the wall clock of SQLite leases."""
    parsed = metastore_engine.normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return PostgresAdvisoryLock(parsed, cluster, holder, timeout_s)
    if backend in ("mysql", "mariadb"):
        return MySqlNamedLock(parsed, cluster, holder, timeout_s)
    return LeaseRowLock(parsed, cluster, holder, timeout_s, clock)
