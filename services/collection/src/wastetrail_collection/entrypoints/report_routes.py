"""Read APIs for auditors and communes: a generator's loads, daily totals, compliance."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.inputs import Day, Limit, Offset
from wastetrail_runtime.problems import unprocessable
from wastetrail_runtime.service import runtime_of

from wastetrail_collection.domain.compliance import Compliance
from wastetrail_collection.entrypoints.guards import AUDITOR
from wastetrail_collection.entrypoints.schemas import (
    CommuneComplianceOut,
    DailyTotalOut,
    DailyTotalsOut,
    GeneratorComplianceOut,
    GeneratorLoadsOut,
    LoadOut,
)
from wastetrail_collection.handlers.common import settings_of
from wastetrail_collection.views import (
    commune_compliance,
    commune_daily_totals,
    generator_compliance,
    generator_loads,
)

router = APIRouter(prefix="/v1", tags=["reports"])
Auditor = Annotated[Principal, Depends(AUDITOR)]
First = Annotated[Day, Query(alias="from", description="first day (inclusive, report time zone)")]
Last = Annotated[Day, Query(alias="to", description="last day (inclusive)")]
MAX_DAYS = 366


def _period(first: date, last: date) -> None:
    if last < first:
        raise unprocessable("invalid-period", f"'to' ({last}) is before 'from' ({first})", "to")
    if (last - first).days >= MAX_DAYS:
        raise unprocessable("invalid-period", f"at most {MAX_DAYS} days per request", "to")


def _rates(c: Compliance) -> dict[str, int | float | None]:
    return {"loads": c.loads, "refusals": c.refusals, "refusal_rate": c.refusal_rate,
            "compliance_rate": c.compliance_rate}


@router.get("/generators/{generator_id}/loads", response_model=GeneratorLoadsOut)
async def loads_of_generator(
    generator_id: str, request: Request, principal: Auditor,
    first: First, last: Last, limit: Limit = 100, offset: Offset = 0,
) -> GeneratorLoadsOut:
    """A generator's loads over a period (a page of them, and the period's totals)."""
    _period(first, last)
    async with runtime_of(request).db.session() as session:
        page = await generator_loads(session, generator_id, first, last, limit, offset)
    return GeneratorLoadsOut(
        generator_id=generator_id, first_day=first, last_day=last, count=page.count,
        total_grams=page.total_grams,
        loads=[LoadOut.model_validate(x, from_attributes=True) for x in page.loads])


@router.get("/communes/{commune}/daily-totals", response_model=DailyTotalsOut)
async def daily_totals(
    commune: str, request: Request, principal: Auditor, first: First, last: Last,
) -> DailyTotalsOut:
    """A commune's collected grams and loads per day and category."""
    _period(first, last)
    rt = runtime_of(request)
    async with rt.db.session() as session:
        totals = await commune_daily_totals(session, commune, first, last)
    return DailyTotalsOut(
        commune=commune, first_day=first, last_day=last,
        timezone=settings_of(rt).report_timezone,
        totals=[DailyTotalOut(day=t.day, category=t.category, grams=t.grams, loads=t.loads)
                for t in totals])


@router.get("/generators/{generator_id}/compliance", response_model=GeneratorComplianceOut)
async def compliance_of_generator(
    generator_id: str, request: Request, principal: Auditor,
    first: First, last: Last,
) -> GeneratorComplianceOut:
    """A generator's sorting compliance: refusals / (loads + refusals) over a period."""
    _period(first, last)
    async with runtime_of(request).db.session() as session:
        result = await generator_compliance(session, generator_id, first, last)
    return GeneratorComplianceOut(generator_id=generator_id, **_rates(result))


@router.get("/communes/{commune}/compliance", response_model=CommuneComplianceOut)
async def compliance_of_commune(
    commune: str, request: Request, principal: Auditor, first: First,
    last: Last, limit: Limit = 100, offset: Offset = 0,
) -> CommuneComplianceOut:
    """A commune's sorting compliance and its refused generators, most refusals first."""
    _period(first, last)
    async with runtime_of(request).db.session() as session:
        total, listed, offenders = await commune_compliance(session, commune, first, last,
                                                            limit, offset)
    return CommuneComplianceOut(
        commune=commune, first_day=first, last_day=last, refused_generators=offenders,
        generators=[GeneratorComplianceOut(generator_id=g.generator_id, code=g.code, name=g.name,
                                           **_rates(g.compliance))
                    for g in listed],
        **_rates(total))
