"""custody alarms at the plant: an alerts table and each receipt's open alarms

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

_UNTREATED = sa.text("accepted_grams > treated_grams AND untreated_alert_id IS NULL")
_REFUSED_HELD = sa.text("refused_grams > redirected_grams AND refused_alert_id IS NULL")


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('subject_kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('expected_grams', sa.BigInteger(), nullable=True),
    sa.Column('observed_grams', sa.BigInteger(), nullable=True),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('plant_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.PrimaryKeyConstraint('alert_id')
    )
    op.create_index('ix_alerts_kind_subject', 'alerts', ['kind', 'subject_id'], unique=False)
    op.create_index(op.f('ix_alerts_raised_at'), 'alerts', ['raised_at'], unique=False)
    op.create_index(op.f('ix_alerts_plant_id'), 'alerts', ['plant_id'], unique=False)
    op.add_column('receipts', sa.Column('untreated_alert_id',
                                        sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))
    op.add_column('receipts', sa.Column('refused_alert_id',
                                        sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))
    op.create_index('ix_receipts_untreated', 'receipts', ['received_at'], unique=False,
                    postgresql_where=_UNTREATED, sqlite_where=_UNTREATED)
    op.create_index('ix_receipts_refused_held', 'receipts', ['received_at'], unique=False,
                    postgresql_where=_REFUSED_HELD, sqlite_where=_REFUSED_HELD)


def downgrade() -> None:
    op.drop_index('ix_receipts_refused_held', table_name='receipts',
                  postgresql_where=_REFUSED_HELD, sqlite_where=_REFUSED_HELD)
    op.drop_index('ix_receipts_untreated', table_name='receipts',
                  postgresql_where=_UNTREATED, sqlite_where=_UNTREATED)
    op.drop_column('receipts', 'refused_alert_id')
    op.drop_column('receipts', 'untreated_alert_id')
    op.drop_index(op.f('ix_alerts_plant_id'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_raised_at'), table_name='alerts')
    op.drop_index('ix_alerts_kind_subject', table_name='alerts')
    op.drop_table('alerts')
