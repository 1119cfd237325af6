"""Events produced by the collection service: registries, trips, loads, refusals."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from wastetrail_contracts.base import (
    MAX_GRAMS,
    Code,
    CommuneCode,
    Count,
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
    members: Annotated[int, Strict(), Field(ge=1, le=10_000)] = 1
    tag_ids: tuple[Code, ...] = ()
    active: bool = True

    @model_validator(mode="after")
    def _class_fits_kind(self) -> GeneratorRegistered:
        # An organisation is never billed as a household; a household may run a small
        # business (hộ kinh doanh) and be billed as one.
        if self.kind is GeneratorKind.ORGANISATION and (
            self.customer_class is CustomerClass.HOUSEHOLD
        ):
            raise ValueError("customer_class: an organisation cannot be billed as a household")
        if self.kind is GeneratorKind.HOUSEHOLD and (
            self.customer_class is CustomerClass.ORGANISATION
        ):
            raise ValueError("customer_class: a household cannot be billed as an organisation")
        if len(set(self.tag_ids)) != len(self.tag_ids):
            raise ValueError("tag_ids: a tag appears twice")
        return self


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
    # The communes it serves (its devices see those communes' households); sorted.
    communes: tuple[CommuneCode, ...] = Field(default=(), max_length=500)


class VehicleRegistered(Event):
    """A collection vehicle with its physical capacity and registered tare."""

    event_type = "collection.vehicle_registered"

    vehicle_id: Id
    plate: Code
    collector_id: Id
    capacity_grams: PositiveGrams
    registered_tare_grams: PositiveGrams

    @model_validator(mode="after")
    def _fits_on_a_road(self) -> VehicleRegistered:
        if self.capacity_grams + self.registered_tare_grams > MAX_GRAMS:
            raise ValueError(
                f"capacity_grams: capacity + tare exceeds the physical maximum {MAX_GRAMS} g"
            )
        return self


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

    @model_validator(mode="after")
    def _crew_unique(self) -> TripStarted:
        if len(set(self.crew)) != len(self.crew):
            raise ValueError("crew: a crew member appears twice")
        return self


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
    litres: Annotated[int, Strict(), Field(gt=0, le=100_000)] | None = None
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
    category: Category | None = None  # what the household declared, if anything
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
    load_count: Count
    closed_at: UtcDatetime

    @model_validator(mode="after")
    def _scans_add_up(self) -> TripClosed:
        # Every load weighs at least one gram, so n loads weigh at least n grams.
        if self.scanned_total_grams < self.load_count:
            raise ValueError("scanned_total_grams: less than one gram per scanned load")
        if self.load_count == 0 and self.scanned_total_grams != 0:
            raise ValueError("scanned_total_grams: must be 0 when no load was scanned")
        return self


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
