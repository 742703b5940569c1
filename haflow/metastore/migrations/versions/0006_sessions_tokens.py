"""web sessions kept server-side; API tokens that expire and can be revoked

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import haflow.metastore.types

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = haflow.metastore.types.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("sid_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", TS(), nullable=False),
        sa.Column("expires_at", TS(), nullable=False),
        sa.Column("ended_at", TS(), nullable=True),
        sa.Column("end_reason", sa.String(length=50), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["user_id"], ["web_user.id"], name=op.f("fk_web_session_user_id_web_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
        sa.UniqueConstraint("sid_sha256", name=op.f("uq_web_session_sid_sha256")),
    )
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"])
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", TS(), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", TS(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
    op.drop_index("ix_web_session_user_id", table_name="web_session")
    op.drop_table("web_session")
