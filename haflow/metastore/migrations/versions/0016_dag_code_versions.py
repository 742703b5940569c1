"""DAG code versions: dag_code, dag_version, dag.code_hash, dag_run.code_hash

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import LONGBLOB

from haflow.metastore.types import UtcDateTime

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dag_code",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("entry", sa.String(length=1000), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column(
            "content",
            sa.LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_dag_code")),
    )
    op.create_table(
        "dag_version",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=250), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["code_hash"], ["dag_code.hash"], name=op.f("fk_dag_version_code_hash_dag_code")
        ),
        sa.PrimaryKeyConstraint("dag_id", "code_hash", name=op.f("pk_dag_version")),
    )
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.drop_column("code_hash")
    with op.batch_alter_table("dag", schema=None) as batch_op:
        batch_op.drop_column("code_hash")
    op.drop_table("dag_version")
    op.drop_table("dag_code")
