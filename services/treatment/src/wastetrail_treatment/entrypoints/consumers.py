"""Kafka consumers: the transfer topic (batches, weighings) and the collection topic
(loads, trips, vehicles), projected into this service's tables (see projections.py)."""

from __future__ import annotations

from wastetrail_contracts import Envelope, Event
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
from wastetrail_runtime.consumer import Consumer
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import UnitOfWork

from wastetrail_treatment import projections

# What is coming (dispatches, declared weights) and how trips were shared among batches.
TRANSFER_EVENTS: tuple[type[Event], ...] = (
    BatchConsolidated, BatchDispatched, TripWeighed, TripReconciled,
)
# Loads and trips, for the fate of each load and for direct haul (vehicle tare).
COLLECTION_EVENTS: tuple[type[Event], ...] = (
    VehicleRegistered, TripStarted, LoadCollected, TripClosed,
)


async def _project(event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
    await projections.apply(uow.session, event, actor=envelope.actor.id,
                            at=envelope.occurred_at)


def make_consumers(rt: ServiceRuntime) -> list[Consumer]:
    """The service's two consumer groups."""
    transfer = Consumer(name="treatment.transfer", source="transfer")
    for cls in TRANSFER_EVENTS:
        transfer.on(cls)(_project)
    collection = Consumer(name="treatment.collection", source="collection")
    for cls in COLLECTION_EVENTS:
        collection.on(cls)(_project)
    return [transfer, collection]
