"""supplementary invoices: loads that arrive after their month was invoiced are billed

An account may now have several invoices for one month: the month's invoice
(``supplement = 0``) and supplementary invoices numbered 1, 2… for loads numbered after
the previous invoice's ``charges_through``. The unique key becomes (account, period,
supplement); existing invoices are the months' invoices. Late loads are now looked for
per month (a run also bills the two months before its own): the index on ``charges.seq``
becomes one on (period, seq).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 04:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('invoices', sa.Column('supplement', sa.Integer(), nullable=False,
                                        server_default='0'))
    op.alter_column('invoices', 'supplement', server_default=None)
    op.drop_constraint('uq_invoices_account_period', 'invoices', type_='unique')
    op.create_unique_constraint('uq_invoices_account_period_supplement', 'invoices',
                                ['account_id', 'period', 'supplement'])
    op.create_index('ix_charges_period_seq', 'charges', ['period', 'seq'], unique=False)
    op.drop_index('ix_charges_seq', table_name='charges')


def downgrade() -> None:
    # Supplementary invoices cannot be folded back into one row per month: refuse rather
    # than lose them.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM invoices WHERE supplement > 0) THEN "
        "RAISE EXCEPTION 'supplementary invoices exist: cannot downgrade below 0003'; "
        "END IF; END $$")
    op.create_index('ix_charges_seq', 'charges', ['seq'], unique=False)
    op.drop_index('ix_charges_period_seq', table_name='charges')
    op.drop_constraint('uq_invoices_account_period_supplement', 'invoices', type_='unique')
    op.create_unique_constraint('uq_invoices_account_period', 'invoices',
                                ['account_id', 'period'])
    op.drop_column('invoices', 'supplement')
