"""Events produced by the collection service: registries, trips, loads, refusals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wastetrail_contracts.base import (
    Code,
    CommuneCode,
    Event,
    Grams,
    Id,
    Latitude,
    Longitude,
    PositiveGrams,
    Sha256Hex,
    Text,
    TotalGrams,
    UtcDatetime,
)
from wastetrail_contracts.enums import (
    Category,
    CommuneClass,
    CustomerClass,
    GeneratorKind,
    RefusalReason,
)


class GeneratorRegistered(Event):
    """A household or organisation became a known waste generator (or its details changed)."""

    event_type = "collection.generator_registered"

    generator_id: Id
    code: Code
    kind: GeneratorKind
    name: Text
    commune: CommuneCode
    commune_class: CommuneClass
    customer_class: CustomerClass
    address: Text = ""
    members: int = Field(default=1, ge=1, le=10_000)
    tag_ids: tuple[Code, ...] = ()
    active: bool = True


class GeneratorStatusChanged(Event):
    """A generator was deactivated (moved away, merged) or reactivated."""

    event_type = "collection.generator_status_changed"

    generator_id: Id
    active: bool
    reason: Text = ""


class CollectionPointRegistered(Event):
    """A collection point (điểm tập kết) where bins are emptied."""

    event_type = "collection.collection_point_registered"

    point_id: Id
    name: Text
    commune: CommuneCode
    latitude: Latitude
    longitude: Longitude


class CollectorRegistered(Event):
    """A collection company (đơn vị thu gom)."""

    event_type = "collection.collector_registered"

    collector_id: Id
    name: Text


class VehicleRegistered(Event):
    """A collection vehicle with its physical capacity and registered tare."""

    event_type = "collection.vehicle_registered"

    vehicle_id: Id
    plate: Code
    collector_id: Id
    capacity_grams: PositiveGrams
    registered_tare_grams: PositiveGrams


class DeviceRegistered(Event):
    """A collector's scanning device."""

    event_type = "collection.device_registered"

    device_id: Id
    collector_id: Id


class TripStarted(Event):
    """A vehicle run began."""

    event_type = "collection.trip_started"

    trip_id: Id
    vehicle_id: Id
    collector_id: Id
    crew: tuple[Code, ...] = Field(min_length=1)
    commune: CommuneCode
    route: Text = ""
    started_at: UtcDatetime


class LoadCollected(Event):
    """One scanned pickup: a generator's sorted waste put into a trip's vehicle.

    The measure is grams from an on-truck scale, or litres / a bag size where bags are
    priced; ``grams`` is then the estimate the collector's device derived from them.
    """

    event_type = "collection.load_collected"

    load_id: Id
    trip_id: Id
    generator_id: Id
    tag_id: Code | None = None
    commune: CommuneCode
    category: Category
    measure: Literal["scale", "bag", "volume"]
    grams: PositiveGrams
    litres: int | None = Field(default=None, gt=0, le=100_000)
    bag_size: Code | None = None
    collected_at: UtcDatetime
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    device_id: Id
    vehicle_id: Id
    idempotency_key: Code

    @model_validator(mode="after")
    def _measure_is_complete(self) -> LoadCollected:
        if self.measure == "bag" and self.bag_size is None:
            raise ValueError("bag_size: required when measure is 'bag'")
        if self.measure == "volume" and self.litres is None:
            raise ValueError("litres: required when measure is 'volume'")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude/longitude: give both or neither")
        return self


class LoadRefused(Event):
    """A collector refused waste that was not sorted or packaged as prescribed (Art. 77)."""

    event_type = "collection.load_refused"

    refusal_id: Id
    trip_id: Id | None = None
    generator_id: Id
    commune: CommuneCode
    reason: RefusalReason
    note: Text = ""
    photo_sha256: Sha256Hex | None = None
    refused_at: UtcDatetime
    device_id: Id
    idempotency_key: Code


class TripClosed(Event):
    """The crew closed the trip with its declared total."""

    event_type = "collection.trip_closed"

    trip_id: Id
    vehicle_id: Id
    declared_total_grams: Grams
    scanned_total_grams: TotalGrams
    load_count: int = Field(ge=0)
    closed_at: UtcDatetime


EVENTS: tuple[type[Event], ...] = (
    GeneratorRegistered,
    GeneratorStatusChanged,
    CollectionPointRegistered,
    CollectorRegistered,
    VehicleRegistered,
    DeviceRegistered,
    TripStarted,
    LoadCollected,
    LoadRefused,
    TripClosed,
)
