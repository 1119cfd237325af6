"""The billing service's app: tariffs, invoices, VNPay payments, ledger, household page.

The EPR deposit-refund scheme (``wastetrail_billing.epr``) runs inside this service: its
router and consumer hooks are included when that package exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI
from wastetrail_runtime.clock import Clock
from wastetrail_runtime.service import ServiceSpec, build_service

from wastetrail_billing.adapters.tables import meta
from wastetrail_billing.entrypoints.consumers import make_consumers
from wastetrail_billing.entrypoints.http import router as api_router
from wastetrail_billing.entrypoints.web import router as web_router
from wastetrail_billing.epr_link import epr_attr, epr_module
from wastetrail_billing.settings import NAME, BillingSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def _routers() -> Sequence[APIRouter]:
    routers = [api_router, web_router]
    make_epr_router = epr_attr("make_epr_router")
    if callable(make_epr_router):
        epr_router = make_epr_router()
        if isinstance(epr_router, APIRouter):
            routers.append(epr_router)
    return routers


# EPR's tables live on billing's metadata; importing them here registers them before
# the service (or Alembic) looks at the metadata.
epr_module("tables")

SPEC = ServiceSpec(
    name=NAME,
    meta=meta,
    migrations=MIGRATIONS,
    routers=_routers(),
    consumers=make_consumers,
    # Month-end invoicing locks the charges table, writes with COPY and upserts with unnest.
    requires_postgres=True,
    title="WasteTrail billing",
    description="Tariffs, full-cost fees, invoices, VNPay payments, the double-entry ledger, "
                "the EPR deposit-refund scheme and the household page.",
)


def create_app(settings: BillingSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The billing service's ASGI app."""
    return build_service(SPEC, settings or BillingSettings(service=NAME), clock=clock)
