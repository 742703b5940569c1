"""dag.structure and dag.notify as MEDIUMTEXT on MySQL/MariaDB

TEXT holds 65,535 bytes there: the structure of a DAG of a few hundred tasks, which PostgreSQL
and SQLite store, was refused on MariaDB (the DAG set aside, issue 36). MEDIUMTEXT holds 16 MiB,
as the variables' values do; the other backends' TEXT has no such limit and is left alone.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import MEDIUMTEXT

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("structure", "{}"), ("notify", "[]"))


def _retype(old: sa.types.TypeEngine[str], new: sa.types.TypeEngine[str]) -> None:
    """Each of COLUMNS from `old` to `new`, on MySQL/MariaDB alone."""
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for column, default in COLUMNS:
        op.alter_column(
            "dag",
            column,
            existing_type=old,
            type_=new,
            existing_nullable=False,
            existing_server_default=default,
        )


def upgrade() -> None:
    _retype(sa.Text(), MEDIUMTEXT())


def downgrade() -> None:
    _retype(MEDIUMTEXT(), sa.Text())
