"""The batch (container) aggregate: what leaves the station for a plant.

One category per batch (stations keep sorted streams apart, Law on Environmental
Protection Art. 76). A batch takes whole trips or weight shares of trips; every trip
keeps a running total across all batches so it is never allocated beyond its net
weight. Sealing freezes the allocations (→ ``BatchConsolidated``); dispatch sends the
sealed batch to a plant that accepts the category (→ ``BatchDispatched``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from wastetrail_contracts.base import MAX_GRAMS
from wastetrail_contracts.enums import Category
from wastetrail_contracts.events.transfer import Allocation, BatchConsolidated, BatchDispatched

from wastetrail_transfer.domain.errors import Conflict, Invalid


class BatchStatus(StrEnum):
    """Where a batch is in its life."""

    OPEN = "open"
    SEALED = "sealed"
    DISPATCHED = "dispatched"
    RECEIVED = "received"


@dataclass
class TripShare:
    """A trip's net weight in one category, and how much of it batches already took."""

    trip_id: str
    category: Category
    grams: int
    allocated_grams: int = 0

    @property
    def remaining_grams(self) -> int:
        """What is still free to allocate."""
        return self.grams - self.allocated_grams


@dataclass(frozen=True)
class Plant:
    """What the transfer side knows of a plant (from ``PlantRegistered``)."""

    plant_id: str
    categories: frozenset[Category]


def check_station_accepts(station_id: str, accepted: Collection[Category],
                          category: Category) -> None:
    """A station only handles the sorted streams it was registered for."""
    if category not in accepted:
        names = ", ".join(sorted(c.value for c in accepted))
        raise Invalid(
            "category-not-accepted",
            f"station {station_id!r} accepts {names}, not {category.value}",
            field="category",
        )


@dataclass
class Batch:
    """A container being filled, sealed, dispatched and received."""

    batch_id: str
    station_id: str
    category: Category
    status: BatchStatus = BatchStatus.OPEN
    allocations: dict[str, int] = field(default_factory=dict)
    seal_number: str | None = None
    dispatched_grams: int | None = None
    plant_id: str | None = None

    @property
    def total_grams(self) -> int:
        """The sum of the allocations."""
        return sum(self.allocations.values())

    def allocate(self, trip_id: str, shares: Mapping[Category, TripShare],
                 grams: int | None) -> TripShare:
        """Put ``grams`` of a trip (or all that is left of it) into this batch.

        ``shares`` are the trip's per-category shares; the one of this batch's category
        is updated in place and returned so the caller can store the running total.
        """
        self.require(BatchStatus.OPEN, "allocate to")
        share = shares.get(self.category)
        if share is None or share.grams == 0:
            carried = ", ".join(sorted(c.value for c, s in shares.items() if s.grams > 0))
            raise Invalid(
                "mixed-categories",
                f"batch {self.batch_id!r} holds {self.category.value} only; trip {trip_id!r} "
                f"carries {carried or 'nothing weighed'}",
                field="trip_id",
            )
        wanted = share.remaining_grams if grams is None else grams
        if share.remaining_grams <= 0 or wanted > share.remaining_grams:
            raise Invalid(
                "over-allocation",
                f"trip {trip_id!r} has {share.remaining_grams} g of {self.category.value} left "
                f"to allocate (net {share.grams} g, already allocated {share.allocated_grams} g); "
                f"{wanted} g requested",
                field="grams" if grams is not None else "trip_id",
                extra={"remaining_grams": share.remaining_grams,
                       "allocated_grams": share.allocated_grams, "net_grams": share.grams},
            )
        if self.total_grams + wanted > MAX_GRAMS:
            raise Invalid(
                "batch-over-capacity",
                f"batch would hold {self.total_grams + wanted} g, more than one vehicle "
                f"carries ({MAX_GRAMS} g)",
                field="grams",
            )
        share.allocated_grams += wanted
        self.allocations[trip_id] = self.allocations.get(trip_id, 0) + wanted
        return share

    def release(self, trip_id: str, share: TripShare) -> int:
        """Take a trip back out of an open batch; returns the grams given back to the trip."""
        self.require(BatchStatus.OPEN, "change")
        grams = self.allocations.pop(trip_id, None)
        if grams is None:
            raise Invalid("not-allocated", f"trip {trip_id!r} is not in batch {self.batch_id!r}",
                          field="trip_id")
        share.allocated_grams -= grams
        return grams

    def seal(self, seal_number: str) -> BatchConsolidated:
        """Close the container with a seal; the allocations are final from here on."""
        self.require(BatchStatus.OPEN, "seal")
        if not self.allocations:
            raise Conflict("empty-batch", f"batch {self.batch_id!r} has no allocations to seal",
                           field="allocations")
        self.status = BatchStatus.SEALED
        self.seal_number = seal_number
        return BatchConsolidated(
            batch_id=self.batch_id,
            station_id=self.station_id,
            category=self.category,
            allocations=tuple(Allocation(trip_id=t, grams=g)
                              for t, g in sorted(self.allocations.items())),
            total_grams=self.total_grams,
            seal_number=seal_number,
        )

    def dispatch(self, plant: Plant | None, plant_id: str, vehicle_id: str,
                 dispatched_grams: int | None, at: datetime) -> BatchDispatched:
        """Send the sealed batch to a plant that accepts its category.

        ``dispatched_grams`` is what the outgoing weighbridge read; when not given, the
        sum of the allocations is what left.
        """
        self.require(BatchStatus.SEALED, "dispatch")
        if plant is None:
            raise Invalid("unknown-plant", f"no plant {plant_id!r} is registered",
                          field="plant_id")
        if self.category not in plant.categories:
            names = ", ".join(sorted(c.value for c in plant.categories))
            raise Invalid(
                "plant-does-not-accept",
                f"plant {plant_id!r} accepts {names}, not {self.category.value}",
                field="plant_id",
            )
        assert self.seal_number is not None  # sealed ⇒ has a seal
        self.status = BatchStatus.DISPATCHED
        self.plant_id = plant_id
        self.dispatched_grams = (
            dispatched_grams if dispatched_grams is not None else self.total_grams
        )
        return BatchDispatched(
            batch_id=self.batch_id,
            station_id=self.station_id,
            category=self.category,
            seal_number=self.seal_number,
            dispatched_grams=self.dispatched_grams,
            plant_id=plant_id,
            vehicle_id=vehicle_id,
            dispatched_at=at,
        )

    def require(self, status: BatchStatus, action: str) -> None:
        """Refuse an action that does not fit the batch's current status."""
        if self.status is not status:
            raise Conflict(
                f"batch-{self.status.value}",
                f"cannot {action} batch {self.batch_id!r}: it is {self.status.value}",
                field="batch_id",
            )
