"""The metastore's own clock, as an SQL expression: `db_utcnow()` is the server's current UTC
time (naive, microseconds), the same type as every timestamp column (`UtcDateTime`).

Worker liveness is judged on this one clock: attempts' heartbeats are stamped with it and the
leader reads it with its snapshot, so neither a worker's nor a scheduler's wall clock (skewed,
or stepped by NTP) takes part in deciding a reclaim (see `haflow.core.reclamation`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from haflow.metastore.types import UtcDateTime


class db_utcnow(FunctionElement[Any]):
    """The metastore server's current time in UTC, evaluated when the statement runs."""

    type = UtcDateTime()
    inherit_cache = True


@compiles(db_utcnow, "postgresql")
def _pg(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "(clock_timestamp() AT TIME ZONE 'UTC')"


@compiles(db_utcnow, "mysql")
@compiles(db_utcnow, "mariadb")
def _mysql(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"


@compiles(db_utcnow, "sqlite")
def _sqlite(_element: Any, _compiler: Any, **_kw: Any) -> str:
    # the text form SQLAlchemy stores DateTime in on SQLite: microseconds, six digits
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def server_utcnow(engine: Engine) -> datetime:
    """The metastore server's clock now, aware UTC (for comparing with this node's)."""
    with engine.connect() as conn:
        now: datetime = conn.execute(select(db_utcnow())).scalar_one()
    return now if now.tzinfo else now.replace(tzinfo=UTC)
