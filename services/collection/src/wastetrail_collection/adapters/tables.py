"""The collection service's tables, on its own metadata (plus the runtime's rt_* tables).

Enums are stored as their string values (no database enum types), so adding a category
is a code change, not a schema migration. Weights are integer grams.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, ForeignKey, Index, String, text
from sqlmodel import Field, SQLModel
from wastetrail_runtime.store import ServiceMetadata

meta = ServiceMetadata()


class CollectionTable(SQLModel, registry=meta.registry):
    """Base of every collection table: binds them to this service's metadata."""


def _when(*, nullable: bool = False, index: bool = False) -> datetime:
    # SQLModel maps datetime to a zone-less column by default; event times are UTC-aware.
    return Field(  # type: ignore[no-any-return]
        sa_type=DateTime(timezone=True), nullable=nullable, index=index
    )


class Generator(CollectionTable, table=True):
    """A household or organisation whose waste is collected."""

    __tablename__ = "generators"

    generator_id: str = Field(primary_key=True, max_length=80)
    code: str = Field(max_length=80, unique=True)
    kind: str = Field(max_length=20)
    name: str = Field(max_length=500)
    commune: str = Field(max_length=40, index=True)
    commune_class: str = Field(max_length=10)
    customer_class: str = Field(max_length=30)
    address: str = Field(default="", max_length=500)
    members: int = 1
    active: bool = True
    updated_at: datetime = _when()


class Tag(CollectionTable, table=True):
    """A QR tag on a bag or bin, bound to one generator."""

    __tablename__ = "tags"

    tag_id: str = Field(primary_key=True, max_length=80)
    generator_id: str = Field(
        sa_column=Column(String(80), ForeignKey("generators.generator_id"), nullable=False,
                         index=True)
    )


class CollectionPoint(CollectionTable, table=True):
    """A collection point (điểm tập kết)."""

    __tablename__ = "collection_points"

    point_id: str = Field(primary_key=True, max_length=80)
    name: str = Field(max_length=500)
    commune: str = Field(max_length=40, index=True)
    latitude: float
    longitude: float


class Collector(CollectionTable, table=True):
    """A collection company (đơn vị thu gom)."""

    __tablename__ = "collectors"

    collector_id: str = Field(primary_key=True, max_length=80)
    name: str = Field(max_length=500)


class CollectorCommune(CollectionTable, table=True):
    """A commune a collector serves: its devices see (and cache) that commune's households."""

    __tablename__ = "collector_communes"

    collector_id: str = Field(primary_key=True, max_length=80)
    commune: str = Field(primary_key=True, max_length=40)


class Vehicle(CollectionTable, table=True):
    """A collection vehicle with its capacity and registered tare."""

    __tablename__ = "vehicles"

    vehicle_id: str = Field(primary_key=True, max_length=80)
    plate: str = Field(max_length=80, unique=True)
    collector_id: str = Field(max_length=80, index=True)
    capacity_grams: int
    registered_tare_grams: int


class Device(CollectionTable, table=True):
    """A collector's scanning device; bound to the vehicle it last started a trip on."""

    __tablename__ = "devices"

    device_id: str = Field(primary_key=True, max_length=80)
    collector_id: str = Field(max_length=80, index=True)
    vehicle_id: str | None = Field(default=None, max_length=80)
    active: bool = True


class Trip(CollectionTable, table=True):
    """A vehicle run, with running totals of what was scanned into it."""

    __tablename__ = "trips"
    # One open trip per vehicle, even when two devices race to start one.
    __table_args__ = (
        Index("uq_trips_open_vehicle", "vehicle_id", unique=True,
              postgresql_where=text("is_open"), sqlite_where=text("is_open")),
    )

    trip_id: str = Field(primary_key=True, max_length=80)
    vehicle_id: str = Field(max_length=80, index=True)
    collector_id: str = Field(max_length=80)
    device_id: str = Field(max_length=80, index=True)
    crew: list[str] = Field(sa_type=JSON)
    commune: str = Field(max_length=40)
    route: str = Field(default="", max_length=500)
    started_at: datetime = _when()
    is_open: bool = True
    closed_at: datetime | None = _when(nullable=True)
    declared_total_grams: int | None = Field(default=None, sa_type=BigInteger)
    scanned_total_grams: int = Field(default=0, sa_type=BigInteger)
    load_count: int = 0


class Load(CollectionTable, table=True):
    """One accepted scan; its primary key (from device + idempotency key) makes it unique."""

    __tablename__ = "loads"
    __table_args__ = (
        Index("ix_loads_generator_day", "generator_id", "day"),
        Index("ix_loads_commune_day", "commune", "day"),
    )

    load_id: str = Field(primary_key=True, max_length=80)
    trip_id: str = Field(max_length=80, index=True)
    generator_id: str = Field(max_length=80)
    tag_id: str | None = Field(default=None, max_length=80)
    commune: str = Field(max_length=40)
    category: str = Field(max_length=20)
    measure: str = Field(max_length=10)
    grams: int
    litres: int | None = None
    bag_size: str | None = Field(default=None, max_length=80)
    collected_at: datetime = _when()
    day: date = Field(sa_type=Date)  # the province's calendar day, for daily totals
    latitude: float | None = None
    longitude: float | None = None
    device_id: str = Field(max_length=80)
    vehicle_id: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=80)


class Refusal(CollectionTable, table=True):
    """Waste a collector refused (Art. 77)."""

    __tablename__ = "refusals"
    __table_args__ = (
        Index("ix_refusals_generator_day", "generator_id", "day"),
        Index("ix_refusals_commune_day", "commune", "day"),
    )

    refusal_id: str = Field(primary_key=True, max_length=80)
    trip_id: str | None = Field(default=None, max_length=80, index=True)
    generator_id: str = Field(max_length=80)
    commune: str = Field(max_length=40)
    reason: str = Field(max_length=30)
    category: str | None = Field(default=None, max_length=20)
    note: str = Field(default="", max_length=500)
    photo_sha256: str | None = Field(default=None, max_length=64)
    refused_at: datetime = _when()
    day: date = Field(sa_type=Date)
    latitude: float | None = None
    longitude: float | None = None
    device_id: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=80)


# Core tables, for bulk statements (upserts) that bypass the ORM.
GENERATORS = meta.metadata.tables["generators"]
TAGS = meta.metadata.tables["tags"]
LOADS = meta.metadata.tables["loads"]
REFUSALS = meta.metadata.tables["refusals"]
