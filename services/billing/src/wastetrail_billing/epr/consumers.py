"""The EPR scheme's Kafka handlers, attached to billing's three consumer groups.

Billing already handles the chain events the scheme needs (LoadCollected,
BatchConsolidated, BatchReceived, TreatmentRecorded), and a runtime ``Consumer`` holds
one handler per type, so the scheme *hooks* onto billing's handler (same transaction,
run after it). A type billing does not handle would be registered with ``.on``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from wastetrail_contracts import Envelope, Event
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.events.transfer import BatchConsolidated
from wastetrail_contracts.events.treatment import BatchReceived, TreatmentRecorded
from wastetrail_runtime.consumer import Consumer
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.epr import handlers

E = TypeVar("E", bound=Event)
Step = Callable[[E, UnitOfWork], Awaitable[None]]


def _attach(consumer: Consumer, event_cls: type[E], step: Step[E]) -> None:
    async def handle(event: E, envelope: Envelope, uow: UnitOfWork) -> None:
        await step(event, uow)

    hook = getattr(consumer, "hook", None)
    if event_cls.event_type in consumer.handlers and callable(hook):
        hook(event_cls)(handle)
    else:
        consumer.on(event_cls)(handle)


def register_handlers(consumers: Mapping[str, Consumer], rt: ServiceRuntime) -> None:
    """Attach the scheme's chain handlers to billing's consumers (keyed by source)."""
    _attach(consumers["collection"], LoadCollected, handlers.on_load_collected)
    _attach(consumers["transfer"], BatchConsolidated, handlers.on_batch_consolidated)
    _attach(consumers["treatment"], BatchReceived, handlers.on_batch_received)
    _attach(consumers["treatment"], TreatmentRecorded, handlers.on_treatment_recorded)
