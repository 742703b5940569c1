"""task_result: what an attempt returned, written with its accepted successful report

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import MEDIUMTEXT

from haflow.metastore.types import UtcDateTime

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "task_result",
        sa.Column("ti_id", id_type, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("run_pk", id_type, nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text().with_variant(MEDIUMTEXT(), "mysql", "mariadb"), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ti_id"], ["task_instance.id"],
            name=op.f("fk_task_result_ti_id_task_instance"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["dag_run.id"],
            name=op.f("fk_task_result_run_pk_dag_run"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ti_id", "attempt", name=op.f("pk_task_result")),
    )
    op.create_index("ix_task_result_run_pk", "task_result", ["run_pk"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_task_result_run_pk", table_name="task_result")
    op.drop_table("task_result")
