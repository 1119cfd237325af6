"""waste held at a station: a trip's holding alarm and when its net left the station

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD = sa.text("weighed_in_at IS NOT NULL AND released_at IS NULL AND held_alert_id IS NULL")


def upgrade() -> None:
    op.add_column('trip', sa.Column('held_alert_id', sqlmodel.sql.sqltypes.AutoString(length=80),
                                    nullable=True))
    op.add_column('trip', sa.Column('released_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_trip_held', 'trip', ['weighed_in_at'], unique=False,
                    postgresql_where=_HELD, sqlite_where=_HELD)


def downgrade() -> None:
    op.drop_index('ix_trip_held', table_name='trip', postgresql_where=_HELD, sqlite_where=_HELD)
    op.drop_column('trip', 'released_at')
    op.drop_column('trip', 'held_alert_id')
