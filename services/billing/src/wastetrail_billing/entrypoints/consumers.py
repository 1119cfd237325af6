"""Kafka consumers of the billing service, and the hook the EPR scheme attaches to.

Three consumer groups, one per source topic:

- ``billing.collection`` — GeneratorRegistered / GeneratorStatusChanged (accounts),
  LoadCollected (charges), LoadRefused (refusals, tracked);
- ``billing.transfer``   — BatchConsolidated (nothing for fees; hooks only);
- ``billing.treatment``  — BatchReceived (hooks only), TreatmentRecorded (treated mass
  per method, for the full-cost report).

A runtime ``Consumer`` holds ONE handler per event type, so the EPR deposit-refund scheme
(``wastetrail_billing.epr``), which lives in this same service, does not register its own
handlers for those types. Instead each consumer here is a ``BillingConsumer`` whose
``extra_handlers`` (the EXTRA_HANDLERS registry: ``dict[event_type, list[handler]]``,
scoped to one ``make_consumers(rt)`` call, i.e. one running app) is run after billing's
own handler, in the same transaction, with the same ``(event, envelope, uow)``::

    # wastetrail_billing/epr/__init__.py
    def register_handlers(consumers: dict[str, BillingConsumer], rt: ServiceRuntime) -> None:
        @consumers["treatment"].hook(TreatmentRecorded)
        async def on_treated(event, envelope, uow): ...

Hookable types: LoadCollected, LoadRefused, GeneratorRegistered, GeneratorStatusChanged
(on "collection"), BatchConsolidated (on "transfer"), BatchReceived, TreatmentRecorded (on
"treatment"). ``consumers[source].on(OtherEvent)`` still works for types billing does not
handle; registering ``.on`` for a type billing already handles raises ValueError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from wastetrail_contracts import Envelope, Event
from wastetrail_contracts.events.collection import (
    GeneratorRegistered,
    GeneratorStatusChanged,
    LoadCollected,
    LoadRefused,
)
from wastetrail_contracts.events.transfer import BatchConsolidated
from wastetrail_contracts.events.treatment import BatchReceived, TreatmentRecorded
from wastetrail_runtime.consumer import Consumer, Handler
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing import handlers
from wastetrail_billing.epr_link import epr_attr

E = TypeVar("E", bound=Event)
Hook = Callable[[E, Envelope, UnitOfWork], Awaitable[None]]


@dataclass
class BillingConsumer(Consumer):
    """A runtime Consumer with per-event-type hooks run after billing's own handler."""

    extra_handlers: dict[str, list[Handler]] = field(default_factory=dict)

    def on(self, event_cls: type[E]) -> Callable[[Hook[E]], Hook[E]]:
        """Register THE handler of a type; refuses a second one (use ``hook`` instead)."""
        if event_cls.event_type in self.handlers:
            raise ValueError(
                f"{self.name} already handles {event_cls.event_type}; "
                "attach with .hook(...) instead"
            )
        return super().on(event_cls)

    def hook(self, event_cls: type[E]) -> Callable[[Hook[E]], Hook[E]]:
        """Attach an extra handler, run after billing's handler in the same transaction."""
        if event_cls.event_type not in self.handlers:
            raise ValueError(
                f"{self.name} does not handle {event_cls.event_type}; register it with .on(...)"
            )

        def register(fn: Hook[E]) -> Hook[E]:
            self.extra_handlers.setdefault(event_cls.event_type, []).append(fn)
            return fn

        return register

    async def run_hooks(self, event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        """Run the extra handlers of the event's type, in registration order."""
        for extra in self.extra_handlers.get(envelope.type, ()):
            await extra(event, envelope, uow)


def make_consumers(rt: ServiceRuntime) -> list[Consumer]:
    """The three billing consumers, with billing's handlers, then EPR's registrations."""
    collection = BillingConsumer(name="billing.collection", source="collection")
    transfer = BillingConsumer(name="billing.transfer", source="transfer")
    treatment = BillingConsumer(name="billing.treatment", source="treatment")

    @collection.on(GeneratorRegistered)
    async def on_generator(event: GeneratorRegistered, envelope: Envelope,
                           uow: UnitOfWork) -> None:
        await handlers.open_account(uow, event, envelope)
        await collection.run_hooks(event, envelope, uow)

    @collection.on(GeneratorStatusChanged)
    async def on_generator_status(event: GeneratorStatusChanged, envelope: Envelope,
                                  uow: UnitOfWork) -> None:
        await handlers.change_account_status(uow, event)
        await collection.run_hooks(event, envelope, uow)

    @collection.on(LoadCollected)
    async def on_load(event: LoadCollected, envelope: Envelope, uow: UnitOfWork) -> None:
        await handlers.record_charge(uow, event)
        await collection.run_hooks(event, envelope, uow)

    @collection.on(LoadRefused)
    async def on_refusal(event: LoadRefused, envelope: Envelope, uow: UnitOfWork) -> None:
        await handlers.record_refusal(uow, event)
        await collection.run_hooks(event, envelope, uow)

    @transfer.on(BatchConsolidated)
    async def on_batch(event: BatchConsolidated, envelope: Envelope, uow: UnitOfWork) -> None:
        await transfer.run_hooks(event, envelope, uow)

    @treatment.on(BatchReceived)
    async def on_received(event: BatchReceived, envelope: Envelope, uow: UnitOfWork) -> None:
        await treatment.run_hooks(event, envelope, uow)

    @treatment.on(TreatmentRecorded)
    async def on_treated(event: TreatmentRecorded, envelope: Envelope,
                         uow: UnitOfWork) -> None:
        await handlers.record_treatment(uow, event)
        await treatment.run_hooks(event, envelope, uow)

    consumers = {"collection": collection, "transfer": transfer, "treatment": treatment}
    register = epr_attr("register_handlers")
    if callable(register):
        register(consumers, rt)
    return [collection, transfer, treatment]
