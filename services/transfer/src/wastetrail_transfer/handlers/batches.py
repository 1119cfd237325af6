"""Consolidating weighed trips into batches, sealing and dispatching them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select
from wastetrail_contracts import Actor
from wastetrail_contracts.enums import Category, CustodySite
from wastetrail_contracts.envelope import uuid7
from wastetrail_runtime.store import UnitOfWork

from wastetrail_transfer.adapters.tables import Batch, BatchAllocation, Plant, Station, Trip
from wastetrail_transfer.adapters.tables import TripShare as TripShareRow
from wastetrail_transfer.domain import batch as domain
from wastetrail_transfer.domain.errors import Conflict, Missing
from wastetrail_transfer.handlers.alarms import release_dispatched


@dataclass(frozen=True)
class AllocationResult:
    """A batch after an allocation change, and the trip's running total in its category."""

    batch: Batch
    allocations: dict[str, int]
    trip_id: str
    trip_share: domain.TripShare


async def open_batch(uow: UnitOfWork, *, station_id: str, category: Category,
                     now: datetime) -> Batch:
    """An empty container for one category the station accepts."""
    station = await uow.session.get(Station, station_id)
    if station is None:
        raise Missing("station-not-found", f"no station {station_id!r}", field="station_id")
    domain.check_station_accepts(station_id, [Category(c) for c in station.categories], category)
    batch = Batch(batch_id=uuid7(), station_id=station_id, category=category.value,
                  status=domain.BatchStatus.OPEN.value, opened_at=now)
    uow.session.add(batch)
    return batch


async def load_batch(uow: UnitOfWork, batch_id: str) -> tuple[Batch, domain.Batch]:
    """The batch's row (locked) and its aggregate with the current allocations."""
    row = await uow.session.get(Batch, batch_id, with_for_update=True)
    if row is None:
        raise Missing("batch-not-found", f"no batch {batch_id!r}", field="batch_id")
    allocations = (await uow.session.exec(
        select(BatchAllocation).where(BatchAllocation.batch_id == batch_id)
    )).all()
    aggregate = domain.Batch(
        batch_id=row.batch_id, station_id=row.station_id, category=Category(row.category),
        status=domain.BatchStatus(row.status),
        allocations={a.trip_id: a.grams for a in allocations},
        seal_number=row.seal_number, dispatched_grams=row.dispatched_grams,
        plant_id=row.plant_id,
    )
    return row, aggregate


async def _trip_shares(uow: UnitOfWork, batch: Batch, trip_id: str
                       ) -> dict[Category, tuple[TripShareRow, domain.TripShare]]:
    trip = await uow.session.get(Trip, trip_id)
    if (trip is None or trip.station_id != batch.station_id
            or trip.weighed_site != CustodySite.STATION.value or trip.net_grams is None):
        raise Conflict("trip-not-weighed-here", f"trip {trip_id!r} was not weighed in and out "
                       f"at station {batch.station_id!r}", field="trip_id")
    if trip.reconciled_at is None:
        # Until every scanned load is known, the split of the net by category is not.
        raise Conflict("trip-not-reconciled", f"trip {trip_id!r} waits for its scanned loads "
                       "from collection before it can be allocated", field="trip_id")
    rows = (await uow.session.exec(
        select(TripShareRow).where(TripShareRow.trip_id == trip_id).with_for_update()
    )).all()
    return {
        Category(r.category): (r, domain.TripShare(trip_id, Category(r.category), r.grams,
                                                   r.allocated_grams))
        for r in rows
    }


async def _save_allocations(uow: UnitOfWork, row: Batch, aggregate: domain.Batch,
                            trip_id: str) -> None:
    existing = await uow.session.get(BatchAllocation, (row.batch_id, trip_id))
    grams = aggregate.allocations.get(trip_id)
    if grams is None:
        if existing is not None:
            await uow.session.delete(existing)
    elif existing is None:
        uow.session.add(BatchAllocation(batch_id=row.batch_id, trip_id=trip_id, grams=grams))
    else:
        existing.grams = grams
    row.total_grams = aggregate.total_grams


async def allocate(uow: UnitOfWork, *, batch_id: str, trip_id: str,
                   grams: int | None) -> AllocationResult:
    """Put a weight share of a trip (or all of its rest) into an open batch."""
    row, aggregate = await load_batch(uow, batch_id)
    aggregate.require(domain.BatchStatus.OPEN, "allocate to")  # before reading the trip
    shares = await _trip_shares(uow, row, trip_id)
    share = aggregate.allocate(trip_id, {c: s for c, (_r, s) in shares.items()}, grams)
    shares[share.category][0].allocated_grams = share.allocated_grams
    await _save_allocations(uow, row, aggregate, trip_id)
    return AllocationResult(row, dict(aggregate.allocations), trip_id, share)


async def release(uow: UnitOfWork, *, batch_id: str, trip_id: str) -> AllocationResult:
    """Take a trip back out of an open batch; its grams are free to allocate again."""
    row, aggregate = await load_batch(uow, batch_id)
    aggregate.require(domain.BatchStatus.OPEN, "change")
    share_row = await uow.session.get(TripShareRow, (trip_id, row.category),
                                      with_for_update=True)
    if share_row is None or trip_id not in aggregate.allocations:
        raise Missing("not-allocated", f"trip {trip_id!r} is not in batch {batch_id!r}",
                      field="trip_id")
    share = domain.TripShare(trip_id, Category(row.category), share_row.grams,
                             share_row.allocated_grams)
    aggregate.release(trip_id, share)
    share_row.allocated_grams = share.allocated_grams
    await _save_allocations(uow, row, aggregate, trip_id)
    return AllocationResult(row, dict(aggregate.allocations), trip_id, share)


async def seal(uow: UnitOfWork, *, batch_id: str, seal_number: str, actor: Actor,
               now: datetime) -> Batch:
    """Seal the container: ``BatchConsolidated`` with its allocations and seal number."""
    row, aggregate = await load_batch(uow, batch_id)
    event = aggregate.seal(seal_number)
    row.status = aggregate.status.value
    row.seal_number = seal_number
    row.sealed_at = now
    row.total_grams = event.total_grams
    await uow.record(batch_id, [event], actor=actor)
    return row


async def dispatch(uow: UnitOfWork, *, batch_id: str, plant_id: str, vehicle_id: str,
                   dispatched_grams: int | None, actor: Actor, now: datetime) -> Batch:
    """Send a sealed batch to a plant that accepts its category: ``BatchDispatched``."""
    row, aggregate = await load_batch(uow, batch_id)
    plant_row = await uow.session.get(Plant, plant_id)
    plant = None if plant_row is None else domain.Plant(
        plant_row.plant_id, frozenset(Category(c) for c in plant_row.categories))
    event = aggregate.dispatch(plant, plant_id, vehicle_id, dispatched_grams, now)
    row.status = aggregate.status.value
    row.plant_id = plant_id
    row.vehicle_id = vehicle_id
    row.dispatched_grams = event.dispatched_grams
    row.dispatched_at = now
    await uow.record(batch_id, [event], actor=actor)
    await release_dispatched(uow, list(aggregate.allocations),
                             f"dispatched in batch {batch_id} to plant {plant_id}", now)
    return row
