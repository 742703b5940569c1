"""Engines for the metastore, one recipe per dialect so every backend behaves alike.

SQLite (standalone only) runs in WAL mode and opens write transactions with BEGIN IMMEDIATE,
so concurrent processes queue on its lock instead of failing on a lock upgrade.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import create_engine as _sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

from haflow.errors import ConfigError

_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalize_url(url: str) -> URL:
    """Parse `url`, picking the drivers haflow ships with when the URL names none."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigError(f"[core] sql_alchemy_conn {url!r} is not a database URL: {exc}") from exc
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    if driver:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() not in ("postgresql", "mysql", "mariadb", "sqlite"):
        raise ConfigError(
            f"[core] sql_alchemy_conn uses {parsed.get_backend_name()!r}; "
            "haflow supports postgresql, mysql/mariadb and sqlite"
        )
    return parsed


SERVER_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
PG_LIVENESS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 8000,
}
"""libpq's limits on a PostgreSQL connection whose server went silent (killed with its host,
cut off, a failed-over primary): a connection attempt gives up after 5 s, and a connection
whose server stops acknowledging (keepalive probes after 5 s idle, or data unacknowledged for
8 s) fails, instead of waiting on TCP's own retries for many minutes. The daemons then
reconnect, to the new primary of a multi-host URL."""


def servers(url: str | URL) -> list[tuple[str, int]]:
    """Every (host, port) a server URL names, in the order they are tried: its host, or each
    `host=` of a PostgreSQL multi-host URL (`postgresql://u:p@/db?host=a:5432&host=b:5432`,
    libpq tries them in turn; with `target_session_attrs=read-write` it keeps the one that
    accepts writes). A SQLite URL names none."""
    parsed = normalize_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return []
    default = SERVER_PORTS.get(backend, 0)
    listed = parsed.query.get("host")
    if parsed.host or not listed:
        return [(parsed.host or "localhost", parsed.port or default)]
    out = []
    for entry in (listed,) if isinstance(listed, str) else listed:
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
        out.append((host or "localhost", int(port) if port.isdigit() else default))
    return out


def libpq_conninfo(url: str, **extra: Any) -> str:
    """The libpq connection string of a PostgreSQL `url` for a connection made without
    SQLAlchemy (LISTEN): the same hosts, ports and options the engine would use (a multi-host
    URL stays one), plus `extra` (application_name, connect_timeout...)."""
    import psycopg

    parsed = normalize_url(url)
    _args, kwargs = parsed.get_dialect()().create_connect_args(parsed)
    kwargs.pop("context", None)  # psycopg's adapters, not a connection parameter
    return psycopg.conninfo.make_conninfo(**{**kwargs, **PG_LIVENESS, **extra})


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_busy_s: float = 60.0,
    idle_tx_timeout_s: float | None = None,
) -> Engine:
    """`sqlite_busy_s`: how long a SQLite writer waits for another process's write lock.

    `idle_tx_timeout_s`: the server ends a session that sits inside a transaction (or, on MySQL,
    idles at all) for longer, rolling the transaction back. A scheduler frozen or cut off in
    the middle of a fenced transaction holds the `leader` row lock; without this limit the next
    leader's `leadership.take` would wait on that lock for as long as the freeze lasts. A worker
    cut off in the middle of a claim or a report would likewise keep its attempt's rows locked
    (for hours, under default TCP keepalives), stalling whoever writes them next.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, sqlite_busy_s)
    kwargs: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 5,
        "pool_recycle": 1800,
    }
    if backend == "postgresql":
        kwargs["connect_args"] = {"application_name": "haflow", **PG_LIVENESS}
        if idle_tx_timeout_s:
            ms = max(1, int(idle_tx_timeout_s * 1000))
            kwargs["connect_args"]["options"] = f"-c idle_in_transaction_session_timeout={ms}"
    else:
        kwargs["connect_args"] = {"connect_timeout": 5}
        kwargs["isolation_level"] = "READ COMMITTED"
    engine = _sa_create_engine(parsed, **kwargs)
    _ping_when_idle(engine)
    if idle_tx_timeout_s and backend != "postgresql":
        _mysql_idle_limit(engine, max(1, math.ceil(idle_tx_timeout_s)))
    return engine


PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection on checkout when it sat idle for over `PING_AFTER_IDLE_S`
    (a restarted or failed-over server, a partition, MySQL's wait_timeout may have ended it),
    and replace it if the test fails. SQLAlchemy's `pool_pre_ping` tests every checkout: a
    round trip, and on psycopg an autocommitted transaction, for every transaction of the hot
    path (it doubled the commits of a claim and of a report). A connection in steady use that
    breaks fails its one statement (BackendUnavailable; claims and reports are conditional,
    so their callers retry) and the pool drops every connection made before the failure."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the driver's own error: the connection is gone
            raise DisconnectionError(f"pooled connection failed its test: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its test")


def _mysql_idle_limit(engine: Engine, seconds: int) -> None:
    # MySQL has no idle-in-transaction limit; wait_timeout ends any idle session (an idle pooled
    # connection too: `_ping_when_idle` replaces it on checkout).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"SET SESSION wait_timeout = {seconds}")
        cur.close()


def _sqlite_engine(parsed: URL, busy_s: float) -> Engine:
    engine = _sa_create_engine(parsed, poolclass=NullPool, connect_args={"timeout": busy_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
