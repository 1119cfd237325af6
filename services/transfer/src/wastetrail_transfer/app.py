"""The transfer service: stations, weighing, reconciliation, batches, dispatch, alarms."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from wastetrail_runtime.alarms import sweep_job
from wastetrail_runtime.clock import Clock
from wastetrail_runtime.service import ServiceRuntime, ServiceSpec, build_service

from wastetrail_transfer.adapters.tables import meta
from wastetrail_transfer.entrypoints.consumers import make_consumers
from wastetrail_transfer.entrypoints.http import router
from wastetrail_transfer.handlers.alarms import sweep
from wastetrail_transfer.settings import TransferSettings, transfer_settings

NAME = "transfer"


async def sweep_alarms(rt: ServiceRuntime) -> int:
    """One alarm sweep at ``rt.clock.now()``: raise what is overdue; returns how many."""
    return await sweep(rt.store, rt.clock.now(), transfer_settings(rt.settings).alarm_delays())


alarm_loop = sweep_job(NAME, lambda rt: transfer_settings(rt.settings).alarm_sweep_seconds,
                       sweep_alarms)


SPEC = ServiceSpec(
    name=NAME,
    meta=meta,
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    consumers=make_consumers,
    background=[alarm_loop],
    title="WasteTrail transfer",
    description="Transfer stations: weighing, reconciliation with scanned loads, "
                "consolidation into batches, dispatch to plants, custody alarms.",
)


def create_app(settings: TransferSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The transfer service's ASGI app."""
    return build_service(SPEC, settings or TransferSettings(service=NAME), clock=clock)
