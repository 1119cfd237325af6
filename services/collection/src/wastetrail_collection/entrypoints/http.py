"""The collection HTTP API: registries, trips and scans, reports."""

from __future__ import annotations

from fastapi import APIRouter

from wastetrail_collection.entrypoints import collect_routes, registry_routes, report_routes

router = APIRouter()
router.include_router(registry_routes.router)
router.include_router(collect_routes.router)
router.include_router(report_routes.router)
