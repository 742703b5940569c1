"""drop dag.next_fire_at: derivable from the schedule and last_fire_at, never written

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import haflow.metastore.types

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.drop_column("next_fire_at")


def downgrade() -> None:
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_fire_at", haflow.metastore.types.UtcDateTime(), nullable=True)
        )
