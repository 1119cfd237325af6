"""The billing service's tables, on its own metadata (plus the runtime's rt_* tables).

The EPR deposit-refund scheme keeps its tables in ``wastetrail_billing.epr.tables`` on
this SAME ``meta`` (subclassing ``BillingTable``), so one Alembic history covers both.
Money is integer đồng, weights integer grams, times UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel
from wastetrail_runtime.store import ServiceMetadata

meta = ServiceMetadata()


class BillingTable(SQLModel, registry=meta.registry):
    """Base of every billing table: binds them to this service's metadata."""


def _when(*, nullable: bool = False, index: bool = False) -> datetime:
    # SQLModel maps datetime to a zone-less column by default; our times are UTC-aware.
    return Field(  # type: ignore[no-any-return]
        sa_type=DateTime(timezone=True), nullable=nullable, index=index
    )


def _dong(*, default: int = 0) -> int:
    # đồng sums over a province exceed 2**31.
    return Field(default=default, sa_type=BigInteger, nullable=False)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- ledger


class LedgerPosting(BillingTable, table=True):
    """One leg of a journal entry (positive = debit, negative = credit)."""

    __tablename__ = "ledger_postings"
    __table_args__ = (Index("ix_ledger_postings_account", "account"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True,
                                                          autoincrement=True))
    entry_id: str = Field(max_length=80, index=True)
    account: str = Field(max_length=120)
    amount: int = _dong()
    reference: str = Field(max_length=80, index=True)
    posted_at: datetime = _when()


class LedgerAccount(BillingTable, table=True):
    """Running balance per ledger account; its row is locked while posting to it.

    Locking this row (SELECT ... FOR UPDATE) serialises concurrent postings to one
    account, so a non-negative account can't be overdrawn by two racing entries.
    """

    __tablename__ = "ledger_accounts"

    account: str = Field(primary_key=True, max_length=120)
    balance: int = _dong()


# ---------------------------------------------------------------- tariffs


class TariffDocument(BillingTable, table=True):
    """One published revision of a province's tariff document (append-only)."""

    __tablename__ = "tariff_documents"

    tariff_id: str = Field(primary_key=True, max_length=80)
    revision: int = Field(primary_key=True)
    province: str = Field(max_length=200)
    label: str = Field(max_length=500)
    source_toml: str = Field(sa_type=Text)
    document_json: str = Field(sa_type=Text)
    document_sha256: str = Field(max_length=64)
    effective_from: str = Field(max_length=2000)  # comma-separated ISO dates, for listing
    published_at: datetime = _when()


class CommuneTariff(BillingTable, table=True):
    """Which tariff prices a commune's accounts; commune ``*`` is the default."""

    __tablename__ = "commune_tariffs"

    commune: str = Field(primary_key=True, max_length=40)
    tariff_id: str = Field(max_length=80)
    assigned_at: datetime = _when()


# ---------------------------------------------------------------- accounts and charges


class Account(BillingTable, table=True):
    """A billing account, projected from the collection service's GeneratorRegistered."""

    __tablename__ = "accounts"

    account_id: str = Field(primary_key=True, max_length=80)
    generator_id: str = Field(max_length=80, unique=True)
    code: str = Field(max_length=80)
    name: str = Field(max_length=500)
    commune: str = Field(max_length=40, index=True)
    commune_class: str = Field(max_length=10)
    customer_class: str = Field(max_length=30)
    active: bool = True
    opened_at: datetime = _when()


class Charge(BillingTable, table=True):
    """One collected load attributed to its generator's account (the fee's quantity).

    Which invoice billed a load is not written on the load: ``seq`` numbers charges in
    insertion order and the invoice of its account and period records the last number it
    covered (``Invoice.charges_through``); a charge numbered after it arrived late and is
    billed by a supplementary invoice. Month-end invoicing then writes one row per
    invoice, not one per load.
    """

    __tablename__ = "charges"
    __table_args__ = (
        Index("ix_charges_account_period", "account_id", "period"),
        # "A month's charges after seq N" (late loads) reads only those. It replaces the
        # index on the former invoice_id column, so the projection maintains as many
        # indexes as before.
        Index("ix_charges_period_seq", "period", "seq"),
    )

    load_id: str = Field(primary_key=True, max_length=80)
    account_id: str = Field(max_length=80)
    trip_id: str = Field(max_length=80)
    commune: str = Field(max_length=40)
    category: str = Field(max_length=20)
    measure: str = Field(max_length=10)
    grams: int = Field(sa_type=BigInteger)
    litres: int | None = None
    bag_size: str | None = Field(default=None, max_length=80)
    collected_at: datetime = _when()
    collected_on: date  # local (Asia/Ho_Chi_Minh) calendar date
    period: str = Field(max_length=7, index=True)  # YYYY-MM of collected_on
    seq: int | None = Field(default=None, sa_column=Column(
        BigInteger, Identity(), nullable=False))


class Refusal(BillingTable, table=True):
    """A load the collector refused (Art. 77); tracked per account and period."""

    __tablename__ = "refusals"
    __table_args__ = (Index("ix_refusals_account_period", "account_id", "period"),)

    refusal_id: str = Field(primary_key=True, max_length=80)
    account_id: str = Field(max_length=80)
    reason: str = Field(max_length=40)
    category: str | None = Field(default=None, max_length=20)
    note: str = Field(default="", max_length=500)
    refused_at: datetime = _when()
    period: str = Field(max_length=7, index=True)


class Treatment(BillingTable, table=True):
    """Treated mass per method (from TreatmentRecorded), for the full-cost report."""

    __tablename__ = "treatments"

    treatment_id: str = Field(primary_key=True, max_length=80)
    plant_id: str = Field(max_length=80)
    period: str = Field(max_length=7, index=True)
    treated_at: datetime = _when()
    methods_json: str = Field(sa_type=Text)  # {"method": grams}
    treated_grams: int = Field(sa_type=BigInteger)


# ---------------------------------------------------------------- invoices and payments


class Invoice(BillingTable, table=True):
    """A monthly invoice; ``invoice_id`` is deterministic from account and period."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("account_id", "period", "supplement",
                                       name="uq_invoices_account_period_supplement"),)

    invoice_id: str = Field(primary_key=True, max_length=80)
    account_id: str = Field(max_length=80, index=True)
    period: str = Field(max_length=7, index=True)
    tariff_id: str = Field(max_length=80)
    tariff_revision: int
    tariff_sha256: str = Field(max_length=64)
    lines_json: str = Field(sa_type=Text)  # the domain invoice's lines, for the web page
    charged_grams: int = Field(sa_type=BigInteger)
    refused_count: int = 0
    subtotal: int = _dong()
    vat: int = _dong()
    credits: int = _dong()
    total: int = _dong()  # subtotal + vat − credits: what the household must pay
    paid: int = _dong()  # net of refunds
    issued_at: datetime = _when()
    # The last ``Charge.seq`` that existed when the invoice was issued: the account's
    # charges of the period up to it are on this invoice, later ones are late.
    charges_through: int = Field(default=0, sa_type=BigInteger)
    # 0: the month's invoice; 1, 2…: supplementary invoices for loads that arrived after
    # it (each bills the loads numbered after the previous one's charges_through).
    supplement: int = 0


class Payment(BillingTable, table=True):
    """One payment attempt (VNPay) or receipt (cash) against an invoice."""

    __tablename__ = "payments"

    payment_id: str = Field(primary_key=True, max_length=80)
    invoice_id: str = Field(max_length=80, index=True)
    account_id: str = Field(max_length=80, index=True)
    amount: int = _dong()
    channel: str = Field(max_length=20)
    txn_ref: str = Field(max_length=80, unique=True)
    order_info: str = Field(max_length=255)
    status: str = Field(max_length=20)  # pending, succeeded, failed
    created_at: datetime = _when()
    response_code: str | None = Field(default=None, max_length=10)
    transaction_status: str | None = Field(default=None, max_length=10)
    gateway_transaction_no: str | None = Field(default=None, max_length=80)
    bank_code: str | None = Field(default=None, max_length=80)
    settled_at: datetime | None = _when(nullable=True)
    refunded: int = _dong()
    recorded_by: str = Field(max_length=80)
    # Set when the gateway said something our records contradict and a person must look
    # (e.g. "late-success-after-failure": VNPay took the money after we recorded a failure).
    reconcile_reason: str | None = Field(default=None, max_length=80)
    late_transaction_no: str | None = Field(default=None, max_length=80)
    late_paid_at: datetime | None = _when(nullable=True)


class Refund(BillingTable, table=True):
    """Money given back on a payment (through VNPay, or in cash by a cashier).

    A VNPay refund is written ``pending`` with its ``request_id`` (vnp_RequestId) and the
    cashier's ``idempotency_key`` BEFORE VNPay is called, so a timeout or a crash leaves a
    trace that a retry reconciles (querydr) instead of refunding again. Only a
    ``succeeded`` refund has moved money and has its event and ledger entry.
    """

    __tablename__ = "refunds"

    refund_id: str = Field(primary_key=True, max_length=80)
    payment_id: str = Field(max_length=80, index=True)
    invoice_id: str = Field(max_length=80)
    account_id: str = Field(max_length=80, index=True)
    amount: int = _dong()
    refund_ref: str = Field(max_length=80)
    reason: str = Field(default="", max_length=500)
    refunded_at: datetime = _when()
    refunded_by: str = Field(max_length=80)
    status: str = Field(default="succeeded", max_length=20)  # pending, succeeded, failed
    request_id: str | None = Field(default=None, max_length=32, unique=True)
    idempotency_key: str | None = Field(default=None, max_length=255, unique=True)
    attempts: int = Field(default=1)
    response_code: str | None = Field(default=None, max_length=10)


# ---------------------------------------------------------------- full cost


class OperatingCost(BillingTable, table=True):
    """A real operating cost of a period (tính đúng, tính đủ)."""

    __tablename__ = "operating_costs"

    cost_id: str = Field(primary_key=True, max_length=80)
    period: str = Field(max_length=7, index=True)
    component: str = Field(max_length=20)
    # Overhead is not one of the fee components; the report charges it to this one.
    allocated_to: str = Field(max_length=20)
    driver: str = Field(max_length=20)
    method: str | None = Field(default=None, max_length=40)
    quantity: int = Field(sa_type=BigInteger)
    amount: int = _dong()
    description: str = Field(default="", max_length=500)
    recorded_at: datetime = _when()
