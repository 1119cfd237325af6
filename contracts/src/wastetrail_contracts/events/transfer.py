"""Events produced by the transfer service: stations, weighing, reconciliation, batches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wastetrail_contracts.base import (
    Code,
    CommuneCode,
    Count,
    Event,
    Grams,
    Id,
    PositiveGrams,
    SignedGrams,
    Text,
    TotalGrams,
    UtcDatetime,
    Value,
)
from wastetrail_contracts.enums import Category, CustodySite


class StationRegistered(Event):
    """A transfer station (trạm trung chuyển) and the sorted streams it accepts."""

    event_type = "transfer.station_registered"

    station_id: Id
    name: Text
    commune: CommuneCode
    capacity_grams: TotalGrams
    categories: tuple[Category, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _categories_unique(self) -> StationRegistered:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories: a category appears twice")
        return self


class TripWeighed(Event):
    """A trip's vehicle crossed a weighbridge in (gross) and out (tare) → net weight.

    Emitted by the transfer service for stations and by the treatment service for
    direct haul to a plant.
    """

    event_type = "transfer.trip_weighed"

    trip_id: Id
    vehicle_id: Id
    site: CustodySite
    site_id: Id
    gross_grams: PositiveGrams
    tare_grams: PositiveGrams
    net_grams: Grams
    tare_source: Literal["weighed", "registered"]
    weighed_in_at: UtcDatetime
    weighed_out_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _net_is_gross_minus_tare(self) -> TripWeighed:
        if self.tare_grams > self.gross_grams:
            raise ValueError("tare_grams: must not exceed gross_grams")
        if self.net_grams != self.gross_grams - self.tare_grams:
            raise ValueError("net_grams: must equal gross_grams - tare_grams")
        if self.weighed_out_at is not None and self.weighed_out_at < self.weighed_in_at:
            raise ValueError("weighed_out_at: must not be before weighed_in_at")
        if self.tare_source == "weighed" and self.weighed_out_at is None:
            raise ValueError("weighed_out_at: required when the tare was weighed on the way out")
        return self


class TripReconciled(Event):
    """A weighed trip compared with the sum of its scanned loads."""

    event_type = "transfer.trip_reconciled"

    trip_id: Id
    site_id: Id
    net_grams: Grams
    scanned_grams: TotalGrams
    load_count: Count
    difference_grams: SignedGrams
    tolerance_grams: Grams
    discrepancy: bool

    @model_validator(mode="after")
    def _difference_is_consistent(self) -> TripReconciled:
        if self.scanned_grams < self.load_count:
            raise ValueError("scanned_grams: less than one gram per scanned load")
        if self.difference_grams != self.net_grams - self.scanned_grams:
            raise ValueError("difference_grams: must equal net_grams - scanned_grams")
        if self.discrepancy != (abs(self.difference_grams) > self.tolerance_grams):
            raise ValueError("discrepancy: must be true exactly when |difference| > tolerance")
        return self


class Allocation(Value):
    """A weight share of one trip put into a batch."""

    trip_id: Id
    grams: PositiveGrams


class BatchConsolidated(Event):
    """A container was filled with whole trips or weight shares of trips and sealed."""

    event_type = "transfer.batch_consolidated"

    batch_id: Id
    station_id: Id
    category: Category
    allocations: tuple[Allocation, ...] = Field(min_length=1)
    total_grams: PositiveGrams  # one container on one vehicle
    seal_number: Code

    @model_validator(mode="after")
    def _total_is_sum(self) -> BatchConsolidated:
        if self.total_grams != sum(a.grams for a in self.allocations):
            raise ValueError("total_grams: must equal the sum of allocations")
        if len({a.trip_id for a in self.allocations}) != len(self.allocations):
            raise ValueError("allocations: a trip appears twice")
        return self


class BatchDispatched(Event):
    """A sealed batch left the station for a plant."""

    event_type = "transfer.batch_dispatched"

    batch_id: Id
    station_id: Id
    category: Category
    seal_number: Code
    dispatched_grams: PositiveGrams
    plant_id: Id
    vehicle_id: Id
    dispatched_at: UtcDatetime


class RefusedWasteReturned(Event):
    """Waste a plant refused came back to the station (it stays in custody)."""

    event_type = "transfer.refused_waste_returned"

    receipt_id: Id
    batch_id: Id
    station_id: Id
    grams: PositiveGrams
    returned_at: UtcDatetime


class TripMarkedDirectHaul(Event):
    """A trip skips the stations and goes straight to a plant, whose weighbridge receipt
    closes its custody. ``station_id`` is the station that decided (none when an admin did);
    the envelope's actor says who."""

    event_type = "transfer.trip_marked_direct_haul"

    trip_id: Id
    plant_id: Id
    station_id: Id | None = None
    marked_at: UtcDatetime


EVENTS: tuple[type[Event], ...] = (
    StationRegistered,
    TripWeighed,
    TripMarkedDirectHaul,
    TripReconciled,
    BatchConsolidated,
    BatchDispatched,
    RefusedWasteReturned,
)
