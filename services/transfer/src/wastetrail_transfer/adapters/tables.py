"""The transfer service's tables, on its own registry (see docs/ARCHITECTURE.md).

Projections of other services' facts (trips, loads, vehicles, plants, receipts) are
filled only from Kafka events; the station's own state (weighings, shares, batches,
alerts) is written together with the events that announce it. Categories and statuses
are stored as their string values so migrations need no database enum types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import JSON, BigInteger, DateTime, Index, text
from sqlmodel import Field, SQLModel
from wastetrail_runtime.alarms import AlertColumns
from wastetrail_runtime.store import ServiceMetadata

meta = ServiceMetadata()


class TransferTable(SQLModel, registry=meta.registry):
    """Base of every transfer table (keeps them out of SQLModel's global metadata)."""


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=nullable, index=index)


def _grams(default: int | None = None, *, nullable: bool = True) -> Any:
    # Grams can exceed 2^31 once summed (a station's month), so every weight is a BIGINT.
    return Field(default=default, sa_type=BigInteger, nullable=nullable)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands timezone-aware columns back naive)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Station(TransferTable, table=True):
    """A transfer station and the sorted streams it accepts."""

    station_id: str = Field(primary_key=True, max_length=80)
    name: str = Field(max_length=500)
    commune: str = Field(max_length=40)
    capacity_grams: int = _grams(nullable=False)
    categories: list[str] = Field(sa_type=JSON, nullable=False)
    registered_at: datetime = _when(nullable=False)


class Vehicle(TransferTable, table=True):
    """A collection vehicle's registered tare (from ``VehicleRegistered``)."""

    vehicle_id: str = Field(primary_key=True, max_length=80)
    plate: str = Field(max_length=80)
    registered_tare_grams: int = _grams(nullable=False)


class Plant(TransferTable, table=True):
    """A treatment plant and the categories it accepts (from ``PlantRegistered``)."""

    plant_id: str = Field(primary_key=True, max_length=80)
    name: str = Field(max_length=500)
    categories: list[str] = Field(sa_type=JSON, nullable=False)


_TRIP_OPEN = text("weighed_in_at IS NULL AND weighed_at IS NULL AND received_at IS NULL "
                  "AND not_weighed_alert_id IS NULL")
_TRIP_HELD = text("weighed_in_at IS NOT NULL AND released_at IS NULL AND held_alert_id IS NULL")
_BATCH_IN_TRANSIT = text("received_at IS NULL AND dispatched_at IS NOT NULL")


class Trip(TransferTable, table=True):
    """One vehicle run as the station sees it: what collection said, what the bridge read.

    A row appears with whichever event arrives first (a start, a load, a weighing, a plant
    receipt), so almost everything is nullable.
    """

    # The alarm sweep only looks at trips still out of custody; a partial index keeps it
    # cheap when the table holds years of trips.
    __table_args__ = (
        Index("ix_trip_custody_open", "closed_at", "started_at",
              postgresql_where=_TRIP_OPEN, sqlite_where=_TRIP_OPEN),
        Index("ix_trip_held", "weighed_in_at",
              postgresql_where=_TRIP_HELD, sqlite_where=_TRIP_HELD),
    )

    trip_id: str = Field(primary_key=True, max_length=80)
    vehicle_id: str | None = Field(default=None, max_length=80)
    collector_id: str | None = Field(default=None, max_length=80)
    commune: str | None = Field(default=None, max_length=40)
    started_at: datetime | None = _when()
    closed_at: datetime | None = _when()
    closed_load_count: int | None = None
    closed_scanned_grams: int | None = _grams()
    load_count: int = 0
    scanned_grams: int = _grams(0, nullable=False)
    direct_haul_plant_id: str | None = Field(default=None, max_length=80)
    # The station that sent the trip straight to a plant (none when an admin did).
    direct_haul_station_id: str | None = Field(default=None, max_length=80)
    # Weighing at a station.
    station_id: str | None = Field(default=None, max_length=80, index=True)
    gross_grams: int | None = _grams()
    weighed_in_at: datetime | None = _when()
    tare_grams: int | None = _grams()
    tare_source: str | None = Field(default=None, max_length=20)
    weighed_out_at: datetime | None = _when()
    net_grams: int | None = _grams()
    # Where the trip was weighed (a station here, or a plant for direct haul).
    weighed_site: str | None = Field(default=None, max_length=20)
    weighed_site_id: str | None = Field(default=None, max_length=80)
    weighed_at: datetime | None = _when()
    received_at: datetime | None = _when()
    received_plant_id: str | None = Field(default=None, max_length=80)
    # Reconciliation.
    reconciled_at: datetime | None = _when()
    reconciled_scanned_grams: int | None = _grams()
    reconciled_load_count: int | None = None
    difference_grams: int | None = _grams()
    tolerance_grams: int | None = _grams()
    discrepancy: bool | None = None
    # Open custody alerts about this trip.
    not_weighed_alert_id: str | None = Field(default=None, max_length=80)
    mismatch_alert_id: str | None = Field(default=None, max_length=80)
    held_alert_id: str | None = Field(default=None, max_length=80)
    # When the last of its net weight left the station in a dispatched batch.
    released_at: datetime | None = _when()


class Load(TransferTable, table=True):
    """A scanned load of a trip (from ``LoadCollected``); only what reconciliation needs."""

    load_id: str = Field(primary_key=True, max_length=80)
    trip_id: str = Field(max_length=80, index=True)
    category: str = Field(max_length=20)
    grams: int = _grams(nullable=False)
    collected_at: datetime = _when(nullable=False)


class TripShare(TransferTable, table=True):
    """A weighed trip's net in one category and the running total batches took of it."""

    __tablename__ = "trip_share"

    trip_id: str = Field(primary_key=True, max_length=80)
    category: str = Field(primary_key=True, max_length=20)
    grams: int = _grams(nullable=False)
    allocated_grams: int = _grams(0, nullable=False)


class Batch(TransferTable, table=True):
    """A container from open to received."""

    __table_args__ = (
        Index("ix_batch_station_status", "station_id", "status"),
        Index("ix_batch_in_transit", "dispatched_at",
              postgresql_where=_BATCH_IN_TRANSIT, sqlite_where=_BATCH_IN_TRANSIT),
    )

    batch_id: str = Field(primary_key=True, max_length=80)
    station_id: str = Field(max_length=80)
    category: str = Field(max_length=20)
    status: str = Field(max_length=20)
    opened_at: datetime = _when(nullable=False)
    seal_number: str | None = Field(default=None, max_length=80)
    sealed_at: datetime | None = _when()
    total_grams: int = _grams(0, nullable=False)
    plant_id: str | None = Field(default=None, max_length=80)
    vehicle_id: str | None = Field(default=None, max_length=80)
    dispatched_grams: int | None = _grams()
    dispatched_at: datetime | None = _when()
    received_at: datetime | None = _when()
    receipt_id: str | None = Field(default=None, max_length=80)
    not_received_alert_id: str | None = Field(default=None, max_length=80)


class BatchAllocation(TransferTable, table=True):
    """Grams of one trip in one batch."""

    __tablename__ = "batch_allocation"

    batch_id: str = Field(primary_key=True, max_length=80)
    trip_id: str = Field(primary_key=True, max_length=80, index=True)
    grams: int = _grams(nullable=False)


class Receipt(TransferTable, table=True):
    """A plant's weighbridge receipt (from ``BatchReceived``), kept for its category."""

    receipt_id: str = Field(primary_key=True, max_length=80)
    plant_id: str = Field(max_length=80)
    batch_id: str | None = Field(default=None, max_length=80)
    trip_id: str | None = Field(default=None, max_length=80)
    category: str = Field(max_length=20)
    received_grams: int = _grams(nullable=False)
    refused_grams: int = _grams(0, nullable=False)
    received_at: datetime = _when(nullable=False)


class RefusedReturn(TransferTable, table=True):
    """Refused waste a plant sent back to a station; it is in the station's custody again."""

    __tablename__ = "refused_return"

    event_id: str = Field(primary_key=True, max_length=36)
    station_id: str = Field(max_length=80, index=True)
    receipt_id: str = Field(max_length=80)
    batch_id: str | None = Field(default=None, max_length=80)
    trip_id: str | None = Field(default=None, max_length=80)
    category: str | None = Field(default=None, max_length=20)
    grams: int = _grams(nullable=False)
    returned_at: datetime = _when(nullable=False)


class Alert(TransferTable, AlertColumns, table=True):
    """A custody alert this service raised, open until ``cleared_at`` is set."""

    __table_args__ = (Index("ix_alert_kind_subject", "kind", "subject_id"),)

    station_id: str | None = Field(default=None, max_length=80)
