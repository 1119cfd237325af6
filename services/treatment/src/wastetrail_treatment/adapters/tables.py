"""The treatment service's own tables (its own MetaData, beside the runtime's rt_* tables).

Two kinds: what the plant records (plants, receipts, redirects, treatment records) and
projections of other services' events, read from Kafka (trips, loads, vehicles, batches
and their allocations). Grams are BIGINT: a plant's totals exceed 2^31 g in a day.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, Index, text
from sqlmodel import Field, SQLModel
from wastetrail_runtime.alarms import AlertColumns
from wastetrail_runtime.store import ServiceMetadata

meta = ServiceMetadata()


def _when(nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class TreatmentTable(SQLModel, registry=meta.registry):
    """Base of every table of this service (keeps them on ``meta``)."""


# --- what the plants record -----------------------------------------------------------


class Plant(TreatmentTable, table=True):
    """A registered treatment plant (khu xử lý)."""

    __tablename__ = "plants"

    plant_id: str = Field(primary_key=True, max_length=80)
    name: str = Field(max_length=500)
    commune: str = Field(max_length=40)
    methods: list[str] = Field(sa_column=Column(JSON, nullable=False))
    categories: list[str] = Field(sa_column=Column(JSON, nullable=False))
    daily_capacity_grams: int = Field(sa_type=BigInteger)
    registered_at: datetime = Field(sa_column=_when())
    updated_at: datetime = Field(sa_column=_when())


# The alarm sweeps look only at receipts with grams still waiting; partial indexes keep
# them cheap when the table holds years of receipts.
_UNTREATED = text("accepted_grams > treated_grams AND untreated_alert_id IS NULL")
_REFUSED_HELD = text("refused_grams > redirected_grams AND refused_alert_id IS NULL")


class Receipt(TreatmentTable, table=True):
    """One weighbridge receipt, with running totals of what was treated and redirected."""

    __tablename__ = "receipts"
    __table_args__ = (
        Index("ix_receipts_plant_day", "plant_id", "plant_day"),
        Index("ix_receipts_untreated", "received_at",
              postgresql_where=_UNTREATED, sqlite_where=_UNTREATED),
        Index("ix_receipts_refused_held", "received_at",
              postgresql_where=_REFUSED_HELD, sqlite_where=_REFUSED_HELD),
    )

    receipt_id: str = Field(primary_key=True, max_length=80)
    plant_id: str = Field(max_length=80)
    batch_id: str | None = Field(default=None, max_length=80, index=True)
    trip_id: str | None = Field(default=None, max_length=80, index=True)
    # Set when this receipt took in the refused part of another plant's receipt.
    redirect_id: str | None = Field(default=None, max_length=80, unique=True)
    source_receipt_id: str | None = Field(default=None, max_length=80)
    category: str = Field(max_length=20)
    declared_grams: int = Field(sa_type=BigInteger)
    received_grams: int = Field(sa_type=BigInteger)
    accepted_grams: int = Field(sa_type=BigInteger)
    refused_grams: int = Field(sa_type=BigInteger)
    treated_grams: int = Field(default=0, sa_type=BigInteger)
    redirected_grams: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(max_length=20)
    refusal_reason: str = Field(default="", max_length=500)
    received_at: datetime = Field(sa_column=_when())
    plant_day: date = Field(sa_type=Date)
    discrepancy: bool = False
    over_capacity: bool = False
    # Direct haul only: the plant weighed the vehicle itself.
    gross_grams: int | None = Field(default=None, sa_type=BigInteger)
    tare_grams: int | None = Field(default=None, sa_type=BigInteger)
    tare_source: str | None = Field(default=None, max_length=20)
    actor: str = Field(max_length=80)
    # Open custody alarms about this receipt (see domain/alarms.py).
    untreated_alert_id: str | None = Field(default=None, max_length=80)
    refused_alert_id: str | None = Field(default=None, max_length=80)


class Redirect(TreatmentTable, table=True):
    """Refused waste sent back to a station or on to another plant (it stays in custody)."""

    __tablename__ = "redirects"

    redirect_id: str = Field(primary_key=True, max_length=80)
    receipt_id: str = Field(max_length=80, index=True)
    plant_id: str = Field(max_length=80)
    grams: int = Field(sa_type=BigInteger)
    destination_kind: str = Field(max_length=20)
    destination_id: str = Field(max_length=80, index=True)
    redirected_at: datetime = Field(sa_column=_when())
    received_receipt_id: str | None = Field(default=None, max_length=80)
    actor: str = Field(max_length=80)


class TreatmentRecord(TreatmentTable, table=True):
    """How much of a receipt went to each method, and what came out."""

    __tablename__ = "treatment_records"

    treatment_id: str = Field(primary_key=True, max_length=80)
    receipt_id: str = Field(max_length=80, index=True)
    plant_id: str = Field(max_length=80)
    methods: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    outputs: list[dict[str, str | int]] = Field(sa_column=Column(JSON, nullable=False))
    energy_kwh: int = Field(default=0, sa_type=BigInteger)
    residue_grams: int = Field(default=0, sa_type=BigInteger)
    residue_destination: str = Field(default="", max_length=500)
    treated_grams: int = Field(sa_type=BigInteger)
    previously_treated_grams: int = Field(sa_type=BigInteger)
    treated_at: datetime = Field(sa_column=_when())
    actor: str = Field(max_length=80)


class Alert(TreatmentTable, AlertColumns, table=True):
    """A custody alert this service raised, open until ``cleared_at`` is set."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_kind_subject", "kind", "subject_id"),)

    plant_id: str | None = Field(default=None, max_length=80, index=True)


# --- projections of the collection and transfer topics --------------------------------


class Vehicle(TreatmentTable, table=True):
    """A collection vehicle (VehicleRegistered): the registered tare for direct haul."""

    __tablename__ = "vehicles"

    vehicle_id: str = Field(primary_key=True, max_length=80)
    plate: str = Field(max_length=80)
    collector_id: str = Field(max_length=80)
    registered_tare_grams: int = Field(sa_type=BigInteger)
    capacity_grams: int = Field(sa_type=BigInteger)


class Trip(TreatmentTable, table=True):
    """A vehicle run as the collection and transfer topics (or this plant) describe it."""

    __tablename__ = "trips"

    trip_id: str = Field(primary_key=True, max_length=80)
    vehicle_id: str | None = Field(default=None, max_length=80)
    collector_id: str | None = Field(default=None, max_length=80)
    commune: str | None = Field(default=None, max_length=40)
    started_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    declared_total_grams: int | None = Field(default=None, sa_type=BigInteger)
    scanned_total_grams: int | None = Field(default=None, sa_type=BigInteger)
    load_count: int | None = None
    weighed_site: str | None = Field(default=None, max_length=20)
    weighed_site_id: str | None = Field(default=None, max_length=80)
    net_grams: int | None = Field(default=None, sa_type=BigInteger)
    weighed_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    weighed_by: str | None = Field(default=None, max_length=80)
    reconciled_difference_grams: int | None = Field(default=None, sa_type=BigInteger)
    reconciled_discrepancy: bool | None = None


class Load(TreatmentTable, table=True):
    """One scanned pickup (LoadCollected)."""

    __tablename__ = "loads"

    load_id: str = Field(primary_key=True, max_length=80)
    trip_id: str = Field(max_length=80, index=True)
    generator_id: str = Field(max_length=80)
    commune: str = Field(max_length=40)
    category: str = Field(max_length=20)
    grams: int = Field(sa_type=BigInteger)
    collected_at: datetime = Field(sa_column=_when())
    device_id: str = Field(max_length=80)
    vehicle_id: str = Field(max_length=80)


class Batch(TreatmentTable, table=True):
    """A container from a station (BatchConsolidated, then BatchDispatched)."""

    __tablename__ = "batches"

    batch_id: str = Field(primary_key=True, max_length=80)
    station_id: str = Field(max_length=80)
    category: str = Field(max_length=20)
    total_grams: int | None = Field(default=None, sa_type=BigInteger)
    seal_number: str = Field(max_length=80)
    consolidated_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    consolidated_by: str | None = Field(default=None, max_length=80)
    plant_id: str | None = Field(default=None, max_length=80, index=True)
    dispatched_grams: int | None = Field(default=None, sa_type=BigInteger)
    vehicle_id: str | None = Field(default=None, max_length=80)
    dispatched_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    dispatched_by: str | None = Field(default=None, max_length=80)


class Allocation(TreatmentTable, table=True):
    """A weight share of one trip put into one batch."""

    __tablename__ = "allocations"

    batch_id: str = Field(primary_key=True, max_length=80)
    trip_id: str = Field(primary_key=True, max_length=80, index=True)
    grams: int = Field(sa_type=BigInteger)
    position: int
