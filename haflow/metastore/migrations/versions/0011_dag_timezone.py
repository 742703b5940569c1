"""dag.timezone (the IANA zone whose wall clock a cron schedule is read on) and dag.end_date

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from haflow.metastore.types import UtcDateTime

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False)
        )
        batch_op.add_column(sa.Column("end_date", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.drop_column("end_date")
        batch_op.drop_column("timezone")
