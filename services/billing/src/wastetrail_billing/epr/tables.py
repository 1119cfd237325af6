"""The EPR scheme's tables, on billing's metadata (one Alembic history for the service).

Every table name starts with ``epr_``. Money is integer đồng (BIGINT), weights integer
grams, times UTC. The ``epr_chain_*`` tables are this scheme's own projection of the
chain's events (load → trip → batch → receipt → treatment): only what deciding a claim
needs, so the scheme does not depend on how billing projects the same events for fees.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, DateTime, Text
from sqlmodel import Field

from wastetrail_billing.adapters.tables import BillingTable


def _when() -> datetime:
    # SQLModel maps datetime to a zone-less column by default; event times are UTC-aware.
    return Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[no-any-return]


def _maybe_when() -> datetime | None:
    return Field(  # type: ignore[no-any-return]
        default=None, sa_type=DateTime(timezone=True), nullable=True
    )


def _big(*, default: int = 0) -> int:
    # Provincial sums of đồng and grams exceed 2**31.
    return Field(default=default, sa_type=BigInteger, nullable=False)  # type: ignore[no-any-return]


class EprProducer(BillingTable, table=True):
    """A producer or importer taking part in the deposit-refund scheme."""

    __tablename__ = "epr_producers"

    producer_id: str = Field(primary_key=True, max_length=60)
    name: str = Field(max_length=500)
    tax_code: str = Field(max_length=80)
    kind: str = Field(max_length=10)
    registered_at: datetime = _when()


class EprPackaging(BillingTable, table=True):
    """One version of a packaging SKU, in force from ``effective_from``."""

    __tablename__ = "epr_packaging"

    sku: str = Field(primary_key=True, max_length=80)
    effective_from: date = Field(primary_key=True)
    producer_id: str = Field(max_length=60, index=True)
    material: str = Field(max_length=20)
    unit_grams: int
    deposit_per_unit: int = _big()
    registered_at: datetime = _when()


class EprMarketReport(BillingTable, table=True):
    """Units of a SKU a producer placed on a province's market in a month."""

    __tablename__ = "epr_market_reports"

    report_id: str = Field(primary_key=True, max_length=60)
    producer_id: str = Field(max_length=60, index=True)
    sku: str = Field(max_length=80, index=True)
    material: str = Field(max_length=20)
    unit_grams: int
    period: str = Field(max_length=7, index=True)
    province: str = Field(max_length=80)
    units: int = _big()
    deposit_per_unit: int = _big()
    deposit_owed: int = _big()
    reported_at: datetime = _when()
    reported_on: date  # local (Vietnam) date the report was filed, for the 31 March deadline


class EprDepositPayment(BillingTable, table=True):
    """Deposits a producer paid into the escrow (a bank transfer recorded by a cashier)."""

    __tablename__ = "epr_deposit_payments"

    payment_id: str = Field(primary_key=True, max_length=60)
    producer_id: str = Field(max_length=60, index=True)
    amount: int = _big()
    channel: str = Field(max_length=20)
    reference: str = Field(max_length=80)
    paid_at: datetime = _when()
    paid_on: date  # local (Vietnam) date, for the 20 April deadline
    recorded_at: datetime = _when()
    recorded_by: str = Field(max_length=80)


class EprReturn(BillingTable, table=True):
    """One packaging return recorded by a collector; its idempotency key is the guard."""

    __tablename__ = "epr_returns"

    idempotency_key: str = Field(primary_key=True, max_length=80)
    request_sha256: str = Field(max_length=64)
    load_id: str = Field(max_length=80, index=True)
    generator_id: str = Field(max_length=80)
    account_id: str = Field(max_length=80)
    claim_ids: str = Field(sa_type=Text)  # JSON list, in line order
    recorded_at: datetime = _when()
    recorded_by: str = Field(max_length=80)


class EprClaim(BillingTable, table=True):
    """A deposit claim and where it stands: pending → confirmed → credited, or rejected."""

    __tablename__ = "epr_claims"

    claim_id: str = Field(primary_key=True, max_length=80)
    idempotency_key: str = Field(max_length=80, index=True)
    account_id: str = Field(max_length=80, index=True)
    generator_id: str = Field(max_length=80)
    load_id: str = Field(max_length=80, index=True)
    producer_id: str = Field(max_length=60, index=True)
    sku: str = Field(max_length=80)
    material: str = Field(max_length=20)
    province: str = Field(max_length=80)
    units: int = _big()
    unit_grams: int
    grams: int = _big()
    deposit_per_unit: int = _big()
    amount: int = _big()
    flagged_over_market: bool = False
    status: str = Field(max_length=10, index=True)
    status_reason: str = Field(default="", max_length=500)
    reason_code: str | None = Field(default=None, max_length=20)
    confirmed_units: int = _big()
    confirmed_amount: int = _big()
    rejected_units: int = _big()
    batch_ids: str = Field(default="", max_length=2000)
    receipt_id: str | None = Field(default=None, max_length=80)
    treatment_id: str | None = Field(default=None, max_length=80)
    entry_id: str | None = Field(default=None, max_length=80)
    opened_at: datetime = _when()
    decided_at: datetime | None = _maybe_when()
    credited_at: datetime | None = _maybe_when()


class EprClaimSlot(BillingTable, table=True):
    """The first claim of a SKU at a load: a second claim of the same units conflicts here."""

    __tablename__ = "epr_claim_slots"

    load_id: str = Field(primary_key=True, max_length=80)
    sku: str = Field(primary_key=True, max_length=80)
    claim_id: str = Field(max_length=80)


class EprChainLoad(BillingTable, table=True):
    """A collected load (from LoadCollected): which trip carried it, from whom, how heavy."""

    __tablename__ = "epr_chain_loads"

    load_id: str = Field(primary_key=True, max_length=80)
    trip_id: str = Field(max_length=80, index=True)
    generator_id: str = Field(max_length=80)
    category: str = Field(max_length=20)
    measure: str = Field(max_length=10)
    grams: int = _big()


class EprChainBatchTrip(BillingTable, table=True):
    """A trip's share of a batch (BatchConsolidated), or a direct-haul trip's receipt."""

    __tablename__ = "epr_chain_batch_trips"

    batch_id: str = Field(primary_key=True, max_length=100)
    trip_id: str = Field(primary_key=True, max_length=80, index=True)
    category: str = Field(max_length=20)
    trip_grams: int = _big()
    total_grams: int = _big()


class EprChainReceipt(BillingTable, table=True):
    """A plant's weighbridge receipt of a batch (BatchReceived)."""

    __tablename__ = "epr_chain_receipts"

    receipt_id: str = Field(primary_key=True, max_length=80)
    batch_id: str = Field(max_length=100, index=True)
    plant_id: str = Field(max_length=80)
    status: str = Field(max_length=20)
    received_grams: int = _big()
    accepted_grams: int = _big()
    refused_grams: int = _big()
    refusal_reason: str = Field(default="", max_length=500)


class EprChainTreatment(BillingTable, table=True):
    """A treatment record of a receipt (TreatmentRecorded): grams per method and outputs."""

    __tablename__ = "epr_chain_treatments"

    treatment_id: str = Field(primary_key=True, max_length=80)
    receipt_id: str = Field(max_length=80, index=True)
    treated_grams: int = _big()
    recycled_grams: int = _big()
    methods_json: str = Field(sa_type=Text)  # {"method": grams}
    materials_json: str = Field(sa_type=Text)  # {"pet": grams} from outputs named by material
