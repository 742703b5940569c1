"""The schema check daemons run at start (no Alembic) agrees with Alembic's own view."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from haflow import metastore
from haflow.errors import SchemaOutOfDate
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate, status
from haflow.metastore.schema_version import HEAD_REVISION, current_revision, require_current

MIGRATIONS = Path(metastore.__file__).parent / "migrations"


def test_the_head_revision_is_alembics_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD_REVISION], (
        "a migration was added: set haflow.metastore.schema_version.HEAD_REVISION to its revision"
    )


def test_an_empty_database_is_refused_then_a_migrated_one_passes(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert current_revision(engine) is None
    with pytest.raises(SchemaOutOfDate, match=r"none \(empty database\).*haflow db migrate"):
        require_current(engine)
    migrate(engine, "0015")
    with pytest.raises(SchemaOutOfDate, match="revision 0015, this haflow needs"):
        require_current(engine)
    migrate(engine)
    require_current(engine)
    assert current_revision(engine) == status(engine).head == HEAD_REVISION
    engine.dispose()
