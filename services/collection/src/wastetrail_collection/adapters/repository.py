"""Bulk reads of the facts the domain rules need: one query per kind, never one per scan."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ARRAY, ColumnElement, String, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wastetrail_collection.adapters.tables import (
    CollectorCommune,
    Device,
    Generator,
    Tag,
    Trip,
    Vehicle,
)
from wastetrail_collection.domain.rules import DeviceFacts, GeneratorFacts, TripFacts

T = TypeVar("T")
# asyncpg accepts at most 32,767 bind parameters per statement; stay well below.
CHUNK = 5_000


def as_utc(when: datetime) -> datetime:
    """A stored time as aware UTC (SQLite hands zone-aware columns back naive)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_of(session: AsyncSession, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter for the lot.

    A 200-value IN list is 200 bound parameters to render, type and send per query; an
    array is one, which keeps a batch's look-ups cheap.
    """
    if session.sync_session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("values", list(values), type_=ARRAY(String),  # type: ignore[no-any-return]
                                        unique=True))
    return column.in_(values)  # type: ignore[no-any-return]


async def served_communes(session: AsyncSession, collector_id: str) -> frozenset[str]:
    """The communes a collector serves."""
    return frozenset((await session.exec(select(CollectorCommune.commune).where(
        col(CollectorCommune.collector_id) == collector_id))).all())


async def device_facts(session: AsyncSession, device_id: str) -> DeviceFacts | None:
    """A registered device and its vehicle binding."""
    device = await session.get(Device, device_id)
    if device is None:
        return None
    return DeviceFacts(device.device_id, device.collector_id, device.vehicle_id, device.active)


async def trips_with_capacity(
    session: AsyncSession, trip_ids: Iterable[str], *, lock: bool
) -> dict[str, tuple[Trip, TripFacts]]:
    """Trips by id with their vehicle's capacity; ``lock`` serialises writers per trip."""
    wanted = sorted(set(trip_ids))  # sorted: concurrent lockers take rows in one order
    if not wanted:
        return {}
    stmt = (
        select(Trip, Vehicle.capacity_grams)
        .join(Vehicle, col(Vehicle.vehicle_id) == col(Trip.vehicle_id))
        .where(col(Trip.trip_id).in_(wanted))
        .order_by(col(Trip.trip_id))
    )
    if lock:
        stmt = stmt.with_for_update(of=Trip)
    found: dict[str, tuple[Trip, TripFacts]] = {}
    for trip, capacity in (await session.exec(stmt)).all():
        found[trip.trip_id] = (trip, TripFacts(trip.trip_id, trip.vehicle_id, trip.is_open,
                                               as_utc(trip.started_at), capacity))
    return found


async def generators_by_tag(
    session: AsyncSession, tag_ids: Iterable[str]
) -> dict[str, GeneratorFacts]:
    """Which generator each known tag belongs to."""
    wanted = list(set(tag_ids))
    found: dict[str, GeneratorFacts] = {}
    for part in chunks(wanted):
        rows = await session.exec(
            select(Tag.tag_id, Generator.generator_id, Generator.commune, Generator.active)
            .join(Generator, col(Generator.generator_id) == col(Tag.generator_id))
            .where(one_of(session, col(Tag.tag_id), part))
        )
        for tag_id, generator_id, commune, active in rows.all():
            found[tag_id] = GeneratorFacts(generator_id, commune, active)
    return found


async def generators_by_code(
    session: AsyncSession, codes: Iterable[str]
) -> dict[str, GeneratorFacts]:
    """Generators by their code (scans typed in when a tag is unreadable)."""
    wanted = list(set(codes))
    found: dict[str, GeneratorFacts] = {}
    for part in chunks(wanted):
        rows = await session.exec(
            select(Generator.code, Generator.generator_id, Generator.commune, Generator.active)
            .where(one_of(session, col(Generator.code), part))
        )
        for code, generator_id, commune, active in rows.all():
            found[code] = GeneratorFacts(generator_id, commune, active)
    return found


async def existing_ids(session: AsyncSession, column: Any, ids: Iterable[str]) -> set[str]:
    """Which of these primary keys already exist (idempotency look-up)."""
    wanted = list(set(ids))
    found: set[str] = set()
    for part in chunks(wanted):
        found.update((await session.exec(select(column).where(
            one_of(session, column, part)))).all())
    return found


async def upsert(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: str,
    *, postgres: bool,
) -> None:
    """Insert rows, or overwrite the rows already there with the same key (bulk)."""
    if not rows:
        return
    for part in chunks(rows, 1_000):
        insert = pg_insert(table) if postgres else sqlite_insert(table)
        columns = [c for c in part[0] if c != key]
        stmt = insert.on_conflict_do_update(
            index_elements=[key], set_={c: insert.excluded[c] for c in columns}
        )
        await session.exec(stmt, params=list(part))
