"""the communes each collector serves

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 20:05:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('collector_communes',
    sa.Column('collector_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('commune', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.PrimaryKeyConstraint('collector_id', 'commune')
    )


def downgrade() -> None:
    op.drop_table('collector_communes')
