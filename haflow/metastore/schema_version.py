"""The schema revision a metastore is at, checked without Alembic: daemons and everyday CLI
commands only need to know that the schema is the one this haflow was built for, and importing
Alembic's runtime costs them a quarter of a second at every start.

`HEAD_REVISION` is the newest migration's revision; tests/unit/test_schema_version.py checks it
against Alembic's own view of haflow/metastore/migrations, so the two cannot drift.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from haflow.errors import SchemaOutOfDate

HEAD_REVISION = "0017"
VERSION_TABLE = "alembic_version"  # Alembic's default: haflow's env.py keeps it


def current_revision(engine: Engine) -> str | None:
    """The revision the metastore's schema is at; None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return ",".join(sorted(map(str, rows))) or None  # several heads, should a branch exist


def require_current(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the metastore is at the head revision."""
    current = current_revision(engine)
    if current != HEAD_REVISION:
        raise SchemaOutOfDate(
            f"the metastore schema is at revision {current or 'none (empty database)'}, "
            f"this haflow needs {HEAD_REVISION}: run `haflow db migrate`"
        )
