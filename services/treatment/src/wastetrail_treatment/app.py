"""The treatment service's app: weighbridge receipts, treatment records, certificates, fate."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from wastetrail_runtime.alarms import sweep_job
from wastetrail_runtime.clock import Clock
from wastetrail_runtime.problems import Problem
from wastetrail_runtime.service import ServiceRuntime, ServiceSpec, build_service

from wastetrail_treatment.adapters.tables import meta
from wastetrail_treatment.alarms import sweep
from wastetrail_treatment.domain.errors import RuleViolation
from wastetrail_treatment.entrypoints.consumers import make_consumers
from wastetrail_treatment.entrypoints.http import router
from wastetrail_treatment.settings import NAME, TreatmentSettings, treatment_settings


async def sweep_alarms(rt: ServiceRuntime) -> int:
    """One alarm sweep at ``rt.clock.now()``: raise what is overdue; returns how many."""
    return await sweep(rt.store, rt.clock.now(), treatment_settings(rt.settings).alarm_delays())


alarm_loop = sweep_job(NAME, lambda rt: treatment_settings(rt.settings).alarm_sweep_seconds,
                       sweep_alarms)

SPEC = ServiceSpec(
    name=NAME,
    meta=meta,
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    consumers=make_consumers,
    background=[alarm_loop],
    title="WasteTrail treatment",
    description=(
        "What a treatment plant (khu xử lý) runs: weighbridge receipts of dispatched batches "
        "and direct-haul trips, acceptance and custody of refused waste, treatment records, "
        "certificates of treatment, the fate of every load, and custody alarms for waste "
        "left untreated or refused waste left at the gate."
    ),
)


async def _rule_violation(request: Request, exc: Exception) -> JSONResponse:
    # A broken domain rule is the caller's to fix: 422 with the rule's stable type and field.
    assert isinstance(exc, RuleViolation)
    problem = Problem(422, exc.code, "Rule violated", exc.detail, field=exc.field)
    return JSONResponse(problem.body(str(request.url.path)), status_code=422,
                        media_type="application/problem+json")


def create_app(settings: TreatmentSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The treatment service's ASGI app."""
    app = build_service(SPEC, settings or TreatmentSettings(service=NAME), clock=clock)
    app.add_exception_handler(RuleViolation, _rule_violation)
    return app
