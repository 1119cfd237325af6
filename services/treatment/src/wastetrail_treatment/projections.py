"""Other services' events → this service's own tables (read models).

Every function is an upsert: the runtime already drops redelivered events by event id,
but a fact may be re-stated by a later event (a re-weighing, a re-consolidation) and
projections must take the newest statement. Each function flushes, so the next event of
the same consumer batch (one transaction) finds what this one wrote.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts.events.collection import (
    LoadCollected,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.transfer import (
    BatchConsolidated,
    BatchDispatched,
    TripReconciled,
    TripWeighed,
)

from wastetrail_treatment.adapters.tables import Allocation, Batch, Load, Trip, Vehicle


async def _trip(session: AsyncSession, trip_id: str) -> Trip:
    trip = await session.get(Trip, trip_id)
    if trip is None:
        trip = Trip(trip_id=trip_id)
    return trip


async def vehicle_registered(session: AsyncSession, e: VehicleRegistered) -> None:
    """Keep the vehicle's registered tare (used when a direct-haul vehicle is not weighed out)."""
    await session.merge(Vehicle(vehicle_id=e.vehicle_id, plate=e.plate,
                                collector_id=e.collector_id,
                                registered_tare_grams=e.registered_tare_grams,
                                capacity_grams=e.capacity_grams))
    await session.flush()


async def trip_started(session: AsyncSession, e: TripStarted) -> None:
    """A trip began: its vehicle and collector."""
    trip = await _trip(session, e.trip_id)
    trip.vehicle_id, trip.collector_id = e.vehicle_id, e.collector_id
    trip.commune, trip.started_at = e.commune, e.started_at
    session.add(trip)
    await session.flush()


async def load_collected(session: AsyncSession, e: LoadCollected) -> None:
    """A scanned load, the unit a fate is asked about."""
    await session.merge(Load(load_id=e.load_id, trip_id=e.trip_id, generator_id=e.generator_id,
                             commune=e.commune, category=e.category.value, grams=e.grams,
                             collected_at=e.collected_at, device_id=e.device_id,
                             vehicle_id=e.vehicle_id))
    trip = await _trip(session, e.trip_id)
    trip.vehicle_id = trip.vehicle_id or e.vehicle_id
    session.add(trip)
    await session.flush()


async def trip_closed(session: AsyncSession, e: TripClosed) -> None:
    """The crew's declared and scanned totals (load shares are of the scanned total)."""
    trip = await _trip(session, e.trip_id)
    trip.vehicle_id = trip.vehicle_id or e.vehicle_id
    trip.declared_total_grams = e.declared_total_grams
    trip.scanned_total_grams = e.scanned_total_grams
    trip.load_count, trip.closed_at = e.load_count, e.closed_at
    session.add(trip)
    await session.flush()


async def trip_weighed(session: AsyncSession, e: TripWeighed, *, actor: str) -> None:
    """A station weighed the trip: its net weight is what the loads share."""
    trip = await _trip(session, e.trip_id)
    trip.vehicle_id = trip.vehicle_id or e.vehicle_id
    trip.weighed_site, trip.weighed_site_id = e.site.value, e.site_id
    trip.net_grams, trip.weighed_at = e.net_grams, e.weighed_out_at or e.weighed_in_at
    trip.weighed_by = actor
    session.add(trip)
    await session.flush()


async def trip_reconciled(session: AsyncSession, e: TripReconciled) -> None:
    """The station's comparison of net weight and scans (shown on the load's path)."""
    trip = await _trip(session, e.trip_id)
    trip.reconciled_difference_grams = e.difference_grams
    trip.reconciled_discrepancy = e.discrepancy
    session.add(trip)
    await session.flush()


async def batch_consolidated(session: AsyncSession, e: BatchConsolidated, *, actor: str,
                             at: datetime) -> None:
    """A container and the weight share of each trip in it."""
    batch = await session.get(Batch, e.batch_id)
    if batch is None:
        batch = Batch(batch_id=e.batch_id, station_id=e.station_id, category=e.category.value,
                      seal_number=e.seal_number)
    batch.station_id, batch.category = e.station_id, e.category.value
    batch.seal_number, batch.total_grams = e.seal_number, e.total_grams
    batch.consolidated_at, batch.consolidated_by = at, actor
    session.add(batch)
    # A re-consolidation restates the whole allocation list.
    await session.exec(delete(Allocation).where(col(Allocation.batch_id) == e.batch_id))
    for position, a in enumerate(e.allocations):
        session.add(Allocation(batch_id=e.batch_id, trip_id=a.trip_id, grams=a.grams,
                               position=position))
    await session.flush()


async def batch_dispatched(session: AsyncSession, e: BatchDispatched, *, actor: str) -> None:
    """What is coming to which plant, with the declared (dispatched) weight."""
    batch = await session.get(Batch, e.batch_id)
    if batch is None:
        batch = Batch(batch_id=e.batch_id, station_id=e.station_id, category=e.category.value,
                      seal_number=e.seal_number)
    batch.plant_id, batch.dispatched_grams = e.plant_id, e.dispatched_grams
    batch.vehicle_id, batch.dispatched_at = e.vehicle_id, e.dispatched_at
    batch.dispatched_by = actor
    session.add(batch)
    await session.flush()


async def apply(session: AsyncSession, event: object, *, actor: str, at: datetime) -> None:
    """Project any event this service consumes (one entry point, used by the consumers)."""
    match event:
        case VehicleRegistered():
            await vehicle_registered(session, event)
        case TripStarted():
            await trip_started(session, event)
        case LoadCollected():
            await load_collected(session, event)
        case TripClosed():
            await trip_closed(session, event)
        case TripWeighed():
            await trip_weighed(session, event, actor=actor)
        case TripReconciled():
            await trip_reconciled(session, event)
        case BatchConsolidated():
            await batch_consolidated(session, event, actor=actor, at=at)
        case BatchDispatched():
            await batch_dispatched(session, event, actor=actor)
        case _:
            raise TypeError(f"treatment does not project {type(event).__name__}")
