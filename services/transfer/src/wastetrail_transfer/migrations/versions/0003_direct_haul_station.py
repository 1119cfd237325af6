"""the station that marked a trip direct haul

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 20:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('trip', sa.Column('direct_haul_station_id',
                                    sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))


def downgrade() -> None:
    op.drop_column('trip', 'direct_haul_station_id')
