"""The Alembic migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from haflow.metastore.migrate import status
from haflow.metastore.models import Base


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert status(engine).up_to_date
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
