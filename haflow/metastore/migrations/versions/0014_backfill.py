"""backfill: requests to run a DAG's intervals in a range; dag_run.backfill_id

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from haflow.metastore.types import UtcDateTime

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "backfill",
        sa.Column("id", id_type, autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column("end", UtcDateTime(), nullable=False),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("max_active_runs", sa.Integer(), nullable=False),
        sa.Column("reset_existing", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill")),
    )
    op.create_index("ix_backfill_state", "backfill", ["state"], unique=False)
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backfill_id", id_type, nullable=True))
        batch_op.create_index("ix_dag_run_backfill_id", ["backfill_id"], unique=False)
        batch_op.create_foreign_key(
            op.f("fk_dag_run_backfill_id_backfill"),
            "backfill",
            ["backfill_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_dag_run_backfill_id_backfill"), type_="foreignkey")
        batch_op.drop_index("ix_dag_run_backfill_id")
        batch_op.drop_column("backfill_id")
    op.drop_index("ix_backfill_state", table_name="backfill")
    op.drop_table("backfill")
