"""election lease row for the SQLite leader lock

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import haflow.metastore.types

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('election_lease',
    sa.Column('cluster', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=250), nullable=False),
    sa.Column('expires_at', haflow.metastore.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('cluster', name=op.f('pk_election_lease'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('election_lease')
