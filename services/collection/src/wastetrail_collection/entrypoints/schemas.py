"""Request and response bodies of the collection HTTP API.

Bounds that are plain shape (lengths, enums, integer types) live here, so a malformed
request is a 422 naming the field. Rules that depend on state (is this tag known, is the
trip open, is the weight within the vehicle's capacity) live in the domain, so that in an
offline batch they reject one scan, not the whole batch.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictInt,
    StringConstraints,
)
from wastetrail_contracts.base import Code, CommuneCode, Grams, PositiveGrams, Sha256Hex, Text
from wastetrail_contracts.enums import (
    Category,
    CommuneClass,
    CustomerClass,
    GeneratorKind,
    RefusalReason,
)
from wastetrail_runtime.inputs import Name, RequestBody

from wastetrail_collection.settings import BATCH_ITEMS

# Registry ids are stream names with a short prefix ("vehicle:..."), so 64 characters at most.
RegistryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
TripId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _stored_utc(when: datetime) -> datetime:
    # Times are stored in UTC; SQLite returns them without their zone.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


StoredTime = Annotated[datetime, AfterValidator(_stored_utc)]



class GeneratorIn(RequestBody):
    """A household or organisation to register (or update, by code)."""

    code: Code
    kind: GeneratorKind = GeneratorKind.HOUSEHOLD
    name: Name
    commune: CommuneCode
    commune_class: CommuneClass
    customer_class: CustomerClass | None = None
    address: Text = ""
    members: Annotated[int, Field(strict=True, ge=1, le=10_000)] = 1
    tag_ids: list[Code] = Field(default_factory=list, max_length=100)
    active: bool = True


class GeneratorStatusIn(RequestBody):
    """Deactivate or reactivate a generator."""

    active: bool
    reason: Text = ""


class CollectorIn(RequestBody):
    """A collection company and the communes it serves (its devices see their households)."""

    collector_id: RegistryId
    name: Name
    communes: list[CommuneCode] = Field(default_factory=list, max_length=500)


class VehicleIn(RequestBody):
    """A collection vehicle."""

    vehicle_id: RegistryId
    plate: Code
    collector_id: RegistryId
    capacity_grams: PositiveGrams
    registered_tare_grams: PositiveGrams


class DeviceIn(RequestBody):
    """A collector's scanning device, optionally bound to one of its vehicles."""

    device_id: RegistryId
    collector_id: RegistryId
    vehicle_id: RegistryId | None = None
    active: bool = True


class CollectionPointIn(RequestBody):
    """A collection point (điểm tập kết)."""

    point_id: RegistryId
    name: Name
    commune: CommuneCode
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class TripStartIn(RequestBody):
    """Start a run. An offline device picks the trip id itself, so a re-sync is harmless."""

    trip_id: TripId | None = None
    vehicle_id: RegistryId
    crew: list[Code] = Field(min_length=1, max_length=20)
    commune: CommuneCode
    route: Text = ""
    started_at: datetime | None = None


class TripCloseIn(RequestBody):
    """Close a run with the crew's declared total (grams)."""

    declared_total_grams: Grams
    closed_at: datetime | None = None


class ScanIn(RequestBody):
    """One load scan: whose waste (QR tag, or typed code), what, how much, when, where."""

    idempotency_key: Code
    trip_id: TripId
    tag_id: Code | None = None
    generator_code: Code | None = None
    category: Category
    measure: Literal["scale", "bag", "volume"] = "scale"
    grams: StrictInt | None = None
    litres: StrictInt | None = None
    bag_size: Code | None = None
    collected_at: datetime
    latitude: FiniteFloat | None = None
    longitude: FiniteFloat | None = None


class ScanBatchIn(RequestBody):
    """An offline device's scans (each judged on its own; see ScanIn for one scan's shape)."""

    items_judged_alone = frozenset({"scans"})
    scans: list[dict[str, object]] = Field(
        min_length=1, max_length=BATCH_ITEMS,
        json_schema_extra={"items": {"$ref": "#/components/schemas/ScanIn"}},
    )


class RefusalIn(RequestBody):
    """Waste the collector refused: unsorted, wrong packaging, hazardous mixed in."""

    idempotency_key: Code
    trip_id: TripId | None = None
    tag_id: Code | None = None
    generator_code: Code | None = None
    reason: RefusalReason
    category: Category | None = None
    note: Text = ""
    photo_sha256: Sha256Hex | None = None
    refused_at: datetime
    latitude: FiniteFloat | None = None
    longitude: FiniteFloat | None = None


class RefusalBatchIn(RequestBody):
    """An offline device's refusals."""

    items_judged_alone = frozenset({"refusals"})
    refusals: list[dict[str, object]] = Field(
        min_length=1, max_length=BATCH_ITEMS,
        json_schema_extra={"items": {"$ref": "#/components/schemas/RefusalIn"}},
    )


# ---- responses ----


class GeneratorOut(BaseModel):
    """A registered generator."""

    generator_id: str
    code: str
    kind: str
    name: str
    commune: str
    commune_class: str
    customer_class: str
    address: str
    members: int
    tag_ids: list[str]
    active: bool


class RegisteredOut(BaseModel):
    """The outcome of a registration: created, updated or unchanged."""

    id: str
    outcome: Literal["created", "updated", "unchanged"]


class RowErrorOut(BaseModel):
    """A CSV row that was not imported."""

    line: int
    field: str
    reason: str
    code: str | None = None


class ImportOut(BaseModel):
    """What a CSV import did."""

    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[RowErrorOut]


class ItemResult(BaseModel):
    """The fate of one scan or refusal of a request."""

    index: int
    idempotency_key: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    id: str | None = Field(default=None, description="the load id or refusal id")
    reason: str | None = None
    field: str | None = None
    detail: str | None = None


class BatchOut(BaseModel):
    """Per-item results of a batch, in request order, with counts."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class LoadOut(BaseModel):
    """One recorded load."""

    load_id: str
    trip_id: str
    generator_id: str
    tag_id: str | None
    commune: str
    category: str
    measure: str
    grams: int
    litres: int | None
    bag_size: str | None
    collected_at: StoredTime
    day: date
    latitude: float | None
    longitude: float | None
    device_id: str
    vehicle_id: str
    idempotency_key: str


class TripOut(BaseModel):
    """A trip and its totals (and, for one trip, a page of its loads)."""

    trip_id: str
    vehicle_id: str
    collector_id: str
    device_id: str
    crew: list[str]
    commune: str
    route: str
    started_at: StoredTime
    is_open: bool
    closed_at: StoredTime | None
    declared_total_grams: int | None
    scanned_total_grams: int
    load_count: int
    loads: list[LoadOut] | None = None


class GeneratorLoadsOut(BaseModel):
    """A generator's loads over a period, with the period's totals."""

    generator_id: str
    first_day: date
    last_day: date
    count: int
    total_grams: int
    loads: list[LoadOut]


class DailyTotalOut(BaseModel):
    """One day and category of a commune's collected waste."""

    day: date
    category: str
    grams: int
    loads: int


class DailyTotalsOut(BaseModel):
    """A commune's daily totals by category (days in the report time zone)."""

    commune: str
    first_day: date
    last_day: date
    timezone: str
    totals: list[DailyTotalOut]


class ComplianceOut(BaseModel):
    """Sorting compliance: refusal_rate = refusals / (loads + refusals)."""

    loads: int
    refusals: int
    refusal_rate: float | None
    compliance_rate: float | None


class GeneratorComplianceOut(ComplianceOut):
    """One generator's compliance."""

    generator_id: str
    code: str = ""
    name: str = ""


class CommuneComplianceOut(ComplianceOut):
    """A commune's compliance and its refused generators (most refusals first)."""

    commune: str
    first_day: date
    last_day: date
    refused_generators: int
    generators: list[GeneratorComplianceOut]
