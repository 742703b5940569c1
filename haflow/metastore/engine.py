"""Engines for the metastore, one recipe per dialect so every backend behaves alike.

SQLite (standalone only) runs in WAL mode and opens write transactions with BEGIN IMMEDIATE,
so concurrent processes queue on its lock instead of failing on a lock upgrade.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import create_engine as _sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
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
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": 5,
        "pool_recycle": 1800,
    }
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5, "application_name": "haflow"}
        if idle_tx_timeout_s:
            ms = max(1, int(idle_tx_timeout_s * 1000))
            kwargs["connect_args"]["options"] = f"-c idle_in_transaction_session_timeout={ms}"
    else:
        kwargs["connect_args"] = {"connect_timeout": 5}
        kwargs["isolation_level"] = "READ COMMITTED"
    engine = _sa_create_engine(parsed, **kwargs)
    if idle_tx_timeout_s and backend != "postgresql":
        _mysql_idle_limit(engine, max(1, math.ceil(idle_tx_timeout_s)))
    return engine


def _mysql_idle_limit(engine: Engine, seconds: int) -> None:
    # MySQL has no idle-in-transaction limit; wait_timeout ends any idle session (an idle pooled
    # connection too: pool_pre_ping replaces it on checkout).
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
