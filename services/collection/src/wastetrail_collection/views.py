"""Read side: trips with their loads, a generator's loads, a commune's daily totals,
sorting compliance. Plain queries on this service's tables, paginated where a list grows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wastetrail_collection.adapters.tables import Generator, Load, Refusal, Tag, Trip
from wastetrail_collection.domain.compliance import Compliance


@dataclass(frozen=True)
class Page:
    """A page of loads and what the whole selection adds up to."""

    loads: Sequence[Load]
    count: int
    total_grams: int


@dataclass(frozen=True)
class DailyTotal:
    """One commune's collected waste of one category on one (local) day."""

    day: date
    category: str
    grams: int
    loads: int


@dataclass(frozen=True)
class GeneratorCompliance:
    """A generator's loads and refusals over a period."""

    generator_id: str
    code: str
    name: str
    compliance: Compliance


async def trip_loads(session: AsyncSession, trip_id: str, limit: int, offset: int) -> Page:
    """A page of a trip's loads in scan order, with the trip's totals."""
    where = col(Load.trip_id) == trip_id
    return await _page(session, where, limit, offset)


async def generator_loads(
    session: AsyncSession, generator_id: str, first: date, last: date, limit: int, offset: int
) -> Page:
    """A generator's loads collected on days ``first``..``last`` (inclusive, local days)."""
    where = (col(Load.generator_id) == generator_id) & col(Load.day).between(first, last)
    return await _page(session, where, limit, offset)


async def _page(
    session: AsyncSession, where: ColumnElement[bool], limit: int, offset: int
) -> Page:
    count, total = (await session.exec(
        select(func.count(), func.coalesce(func.sum(col(Load.grams)), 0)).where(where)
    )).one()
    loads = (await session.exec(
        select(Load).where(where).order_by(col(Load.collected_at), col(Load.load_id))
        .limit(limit).offset(offset)
    )).all()
    return Page(loads, int(count), int(total))


async def commune_daily_totals(
    session: AsyncSession, commune: str, first: date, last: date
) -> list[DailyTotal]:
    """Grams and loads per day and category collected in a commune."""
    rows = await session.exec(
        select(col(Load.day), col(Load.category), func.sum(col(Load.grams)), func.count())
        .where(col(Load.commune) == commune, col(Load.day).between(first, last))
        .group_by(col(Load.day), col(Load.category))
        .order_by(col(Load.day), col(Load.category))
    )
    return [DailyTotal(day, category, int(grams), int(n)) for day, category, grams, n in rows]


async def generator_compliance(
    session: AsyncSession, generator_id: str, first: date, last: date
) -> Compliance:
    """How many loads and refusals one generator had in a period."""
    loads = (await session.exec(select(func.count()).where(
        col(Load.generator_id) == generator_id, col(Load.day).between(first, last)))).one()
    refusals = (await session.exec(select(func.count()).where(
        col(Refusal.generator_id) == generator_id,
        col(Refusal.day).between(first, last)))).one()
    return Compliance(int(loads), int(refusals))


async def commune_compliance(
    session: AsyncSession, commune: str, first: date, last: date, limit: int, offset: int
) -> tuple[Compliance, list[GeneratorCompliance], int]:
    """A commune's compliance, and its refused generators, most refusals first (the
    commune's violation list), with how many generators were refused at all."""
    loads = (await session.exec(select(func.count()).where(
        col(Load.commune) == commune, col(Load.day).between(first, last)))).one()
    refused_where = (col(Refusal.commune) == commune) & col(Refusal.day).between(first, last)
    refusals = (await session.exec(select(func.count()).where(refused_where))).one()
    offenders = (await session.exec(
        select(func.count(func.distinct(Refusal.generator_id))).where(refused_where))).one()
    per_generator = (await session.exec(
        select(Refusal.generator_id, func.count().label("n")).where(refused_where)
        .group_by(col(Refusal.generator_id))
        .order_by(func.count().desc(), col(Refusal.generator_id))
        .limit(limit).offset(offset)
    )).all()
    ids = [g for g, _ in per_generator]
    load_counts = dict((await session.exec(
        select(Load.generator_id, func.count()).where(
            col(Load.generator_id).in_(ids), col(Load.day).between(first, last))
        .group_by(col(Load.generator_id)))).all()) if ids else {}
    names = {g.generator_id: g for g in (await session.exec(
        select(Generator).where(col(Generator.generator_id).in_(ids)))).all()} if ids else {}
    listed = [
        GeneratorCompliance(g, names[g].code if g in names else "",
                            names[g].name if g in names else "",
                            Compliance(int(load_counts.get(g, 0)), int(n)))
        for g, n in per_generator
    ]
    return Compliance(int(loads), int(refusals)), listed, int(offenders)


async def tags_of(session: AsyncSession, generator_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each generator's QR tags, sorted."""
    found: dict[str, list[str]] = {g: [] for g in generator_ids}
    if generator_ids:
        for tag in (await session.exec(select(Tag).where(
                col(Tag.generator_id).in_(generator_ids)).order_by(col(Tag.tag_id)))).all():
            found[tag.generator_id].append(tag.tag_id)
    return found


async def trips(
    session: AsyncSession, vehicle_id: str | None, is_open: bool | None, limit: int, offset: int,
    collector_id: str | None = None,
) -> Sequence[Trip]:
    """Trips, newest first, optionally of one vehicle or collector, or only open/closed ones."""
    stmt = select(Trip)
    if collector_id is not None:
        stmt = stmt.where(col(Trip.collector_id) == collector_id)
    if vehicle_id is not None:
        stmt = stmt.where(col(Trip.vehicle_id) == vehicle_id)
    if is_open is not None:
        stmt = stmt.where(col(Trip.is_open) == is_open)
    return (await session.exec(
        stmt.order_by(col(Trip.started_at).desc(), col(Trip.trip_id)).limit(limit).offset(offset)
    )).all()
