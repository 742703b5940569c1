"""notifications: dag.notify (who is notified of which event) and the notification outbox

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from haflow.metastore.types import UtcDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify", sa.Text(), server_default="[]", nullable=False))
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "notification",
        sa.Column("id", id_type, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("claim_epoch", sa.BigInteger(), nullable=True),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("key", name=op.f("uq_notification_key")),
    )
    op.create_index(
        "ix_notification_state_due_at", "notification", ["state", "due_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notification_state_due_at", table_name="notification")
    op.drop_table("notification")
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.drop_column("notify")
