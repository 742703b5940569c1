"""web: users, API tokens, login failures, webservers, and each DAG's structure for its graph

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import haflow.metastore.types

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = haflow.metastore.types.UtcDateTime


def upgrade() -> None:
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("structure", sa.Text(), server_default="{}", nullable=False))
    op.create_table(
        "web_user",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_user")),
        sa.UniqueConstraint("username", name=op.f("uq_web_user_username")),
    )
    op.create_table(
        "api_token",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["web_user.id"], name=op.f("fk_api_token_user_id_web_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_token_token_sha256")),
    )
    op.create_table(
        "login_failure",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=100), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("ts", TS(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    op.create_index("ix_login_failure_address_ts", "login_failure", ["address", "ts"])
    op.create_table(
        "webserver",
        sa.Column("id", sa.String(length=250), nullable=False),
        sa.Column("hostname", sa.String(length=250), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("secret_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("started_at", TS(), nullable=False),
        sa.Column("heartbeat_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webserver")),
    )


def downgrade() -> None:
    op.drop_table("webserver")
    op.drop_index("ix_login_failure_address_ts", table_name="login_failure")
    op.drop_table("login_failure")
    op.drop_table("api_token")
    op.drop_table("web_user")
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.drop_column("structure")
