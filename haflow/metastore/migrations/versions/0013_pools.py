"""pools: named slots, task_instance.pool and pool_slots (the default pool needs no row)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_POOL = "default_pool"  # haflow.core.pools, as it was when this migration was written


def upgrade() -> None:
    op.create_table(
        "pool",
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pool")),
    )
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pool", sa.String(length=250), server_default=DEFAULT_POOL, nullable=False)
        )
        batch_op.add_column(
            sa.Column("pool_slots", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.drop_column("pool_slots")
        batch_op.drop_column("pool")
    op.drop_table("pool")
