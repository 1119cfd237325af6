"""The collection service: what collectors' devices talk to."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from wastetrail_runtime.clock import Clock
from wastetrail_runtime.service import ServiceSpec, build_service
from wastetrail_runtime.settings import ServiceSettings

from wastetrail_collection.adapters.tables import meta
from wastetrail_collection.entrypoints.http import router
from wastetrail_collection.settings import NAME, CollectionSettings


def _import_bytes(settings: ServiceSettings) -> int:
    # The CSV import streams its file and counts it against its own, larger limit.
    return settings.max_import_bytes if isinstance(settings, CollectionSettings) else 0


SPEC = ServiceSpec(
    name=NAME,
    meta=meta,
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    large_bodies={"/v1/generators/import": _import_bytes},
    consumers=None,  # collection reads no other service's events (topics.CONSUMERS)
    title="WasteTrail collection",
    description="Registries, trips, load scans (single and offline batches) and refusals.",
)


def create_app(settings: CollectionSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The collection service's ASGI app."""
    return build_service(SPEC, settings or CollectionSettings(service=NAME), clock=clock)
