"""refunds exactly once: pending refunds with a stable request id and an idempotency key;
late IPNs flagged for reconciliation

A VNPay refund is now written as ``pending`` (with its vnp_RequestId and the cashier's
Idempotency-Key) before the gateway is called; existing refunds all moved money, so they
are ``succeeded``. Payments gain the reconciliation flag a late successful IPN sets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 20:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('refunds', sa.Column('status', sa.String(length=20), nullable=False,
                                       server_default='succeeded'))
    op.alter_column('refunds', 'status', server_default=None)
    op.add_column('refunds', sa.Column('request_id', sa.String(length=32), nullable=True))
    op.add_column('refunds', sa.Column('idempotency_key', sa.String(length=255),
                                       nullable=True))
    op.add_column('refunds', sa.Column('attempts', sa.Integer(), nullable=False,
                                       server_default='1'))
    op.alter_column('refunds', 'attempts', server_default=None)
    op.add_column('refunds', sa.Column('response_code', sa.String(length=10), nullable=True))
    op.create_unique_constraint('uq_refunds_request_id', 'refunds', ['request_id'])
    op.create_unique_constraint('uq_refunds_idempotency_key', 'refunds', ['idempotency_key'])
    op.add_column('payments', sa.Column('reconcile_reason', sa.String(length=80),
                                        nullable=True))
    op.add_column('payments', sa.Column('late_transaction_no', sa.String(length=80),
                                        nullable=True))
    op.add_column('payments', sa.Column('late_paid_at', sa.DateTime(timezone=True),
                                        nullable=True))


def downgrade() -> None:
    # A pending or failed refund has no place in the older schema (every row there moved
    # money): refuse rather than turn it into a refund that never happened.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM refunds WHERE status <> 'succeeded') THEN "
        "RAISE EXCEPTION 'pending or failed refunds exist: cannot downgrade below 0004'; "
        "END IF; END $$")
    op.drop_column('payments', 'late_paid_at')
    op.drop_column('payments', 'late_transaction_no')
    op.drop_column('payments', 'reconcile_reason')
    op.drop_constraint('uq_refunds_idempotency_key', 'refunds', type_='unique')
    op.drop_constraint('uq_refunds_request_id', 'refunds', type_='unique')
    op.drop_column('refunds', 'response_code')
    op.drop_column('refunds', 'attempts')
    op.drop_column('refunds', 'idempotency_key')
    op.drop_column('refunds', 'request_id')
    op.drop_column('refunds', 'status')
