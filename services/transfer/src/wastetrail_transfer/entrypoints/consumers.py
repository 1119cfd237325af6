"""Kafka consumers: collection's trips, loads and vehicles; treatment's plants and receipts."""

from __future__ import annotations

from collections.abc import Sequence

from wastetrail_contracts import Envelope
from wastetrail_contracts.events.collection import (
    LoadCollected,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.transfer import TripWeighed
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    PlantRegistered,
    RefusedWasteRedirected,
)
from wastetrail_runtime.consumer import Consumer
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import UnitOfWork

from wastetrail_transfer.handlers import projections
from wastetrail_transfer.settings import transfer_settings


def make_consumers(rt: ServiceRuntime) -> list[Consumer]:
    """The transfer service's two consumer groups."""
    tolerance = transfer_settings(rt.settings).tolerance()

    collection = Consumer(name="transfer.collection", source="collection")

    @collection.on(TripStarted)
    async def on_trip_started(event: TripStarted, envelope: Envelope, uow: UnitOfWork) -> None:
        await projections.trip_started(uow, event)

    @collection.on_many(LoadCollected)
    async def on_loads(items: Sequence[tuple[LoadCollected, Envelope]], uow: UnitOfWork) -> None:
        await projections.loads_collected(uow, [event for event, _ in items], tolerance,
                                          rt.clock.now())

    @collection.on(TripClosed)
    async def on_trip_closed(event: TripClosed, envelope: Envelope, uow: UnitOfWork) -> None:
        await projections.trip_closed(uow, event, tolerance, rt.clock.now())

    @collection.on(VehicleRegistered)
    async def on_vehicle(event: VehicleRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        await projections.vehicle_registered(uow, event)

    treatment = Consumer(name="transfer.treatment", source="treatment")

    @treatment.on(PlantRegistered)
    async def on_plant(event: PlantRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        await projections.plant_registered(uow, event)

    @treatment.on(BatchReceived)
    async def on_received(event: BatchReceived, envelope: Envelope, uow: UnitOfWork) -> None:
        await projections.batch_received(uow, event, rt.clock.now())

    @treatment.on(TripWeighed)
    async def on_weighed(event: TripWeighed, envelope: Envelope, uow: UnitOfWork) -> None:
        await projections.trip_weighed_at_plant(uow, event, rt.clock.now())

    @treatment.on(RefusedWasteRedirected)
    async def on_redirected(event: RefusedWasteRedirected, envelope: Envelope,
                            uow: UnitOfWork) -> None:
        await projections.refused_waste_redirected(uow, event, envelope.event_id)

    return [collection, treatment]
