"""Registries: generators (one by one or from CSV), collectors, vehicles, devices, points.

Registering is idempotent: the same details again change nothing and emit nothing; new
details update the row and emit the Registered event again (billing and the audit build
their views from these events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import insert
from sqlmodel import col, delete, select
from wastetrail_contracts.events.collection import (
    CollectionPointRegistered,
    CollectorRegistered,
    DeviceRegistered,
    GeneratorRegistered,
    GeneratorStatusChanged,
    VehicleRegistered,
)
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.problems import not_found
from wastetrail_runtime.service import ServiceRuntime

from wastetrail_collection.adapters.repository import chunks, served_communes, upsert
from wastetrail_collection.adapters.tables import (
    GENERATORS,
    TAGS,
    CollectionPoint,
    Collector,
    CollectorCommune,
    Device,
    Generator,
    Tag,
    Vehicle,
)
from wastetrail_collection.domain.generators import RowError, decode_csv, parse_generators_csv
from wastetrail_collection.domain.rules import Rejection
from wastetrail_collection.handlers.common import problem, settings_of, with_retries

Change = Literal["created", "updated", "unchanged"]


@dataclass
class ImportReport:
    """What a CSV import did: rows created, updated, unchanged, and every rejected row."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


def _generator_row(event: GeneratorRegistered, rt: ServiceRuntime) -> dict[str, Any]:
    return {"generator_id": event.generator_id, "code": event.code, "kind": event.kind.value,
            "name": event.name, "commune": event.commune,
            "commune_class": event.commune_class.value,
            "customer_class": event.customer_class.value, "address": event.address,
            "members": event.members, "active": event.active, "updated_at": rt.clock.now()}


def generator_event(row: Generator, tags: list[str]) -> GeneratorRegistered:
    """The registration event describing a stored generator."""
    return GeneratorRegistered.model_validate({
        "generator_id": row.generator_id, "code": row.code, "kind": row.kind, "name": row.name,
        "commune": row.commune, "commune_class": row.commune_class,
        "customer_class": row.customer_class, "address": row.address, "members": row.members,
        "tag_ids": tuple(sorted(tags)), "active": row.active})


def _same(a: GeneratorRegistered, b: GeneratorRegistered) -> bool:
    return a.model_copy(update={"tag_ids": tuple(sorted(a.tag_ids))}) == b.model_copy(
        update={"tag_ids": tuple(sorted(b.tag_ids))})


async def save_generators(
    rt: ServiceRuntime, principal: Principal, events: list[tuple[int, GeneratorRegistered]]
) -> ImportReport:
    """Register or update generators in one transaction; rows whose tags are taken fail.

    ``events`` pairs each generator with its line (CSV) or 0 (API). Bad rows are reported
    and skipped; the good ones are all committed together.
    """
    async def work() -> ImportReport:
        report = ImportReport()
        async with rt.store.unit_of_work() as uow:
            session = uow.session
            ids = [e.generator_id for _, e in events]
            existing: dict[str, Generator] = {}
            current_tags: dict[str, list[str]] = {}
            for part in chunks(ids):
                for gen in (await session.exec(
                        select(Generator).where(col(Generator.generator_id).in_(part)))).all():
                    existing[gen.generator_id] = gen
                    current_tags[gen.generator_id] = []
            tag_owner: dict[str, str] = {}
            wanted_tags = list({t for _, e in events for t in e.tag_ids})
            for part in chunks(wanted_tags):
                for tag in (await session.exec(select(Tag).where(col(Tag.tag_id).in_(part)))):
                    tag_owner[tag.tag_id] = tag.generator_id
            for part in chunks(list(existing)):
                for tag in (await session.exec(
                        select(Tag).where(col(Tag.generator_id).in_(part)))).all():
                    current_tags.setdefault(tag.generator_id, []).append(tag.tag_id)
            rows: list[dict[str, Any]] = []
            new_tags: list[dict[str, Any]] = []
            dropped: list[str] = []
            actor = principal.actor()
            for line, event in events:
                taken = next((t for t in event.tag_ids
                              if tag_owner.get(t, event.generator_id) != event.generator_id),
                             None)
                if taken is not None:
                    report.errors.append(RowError(
                        line, "tag_ids", f"tag {taken!r} already belongs to generator "
                        f"{tag_owner[taken]}", event.code))
                    continue
                old = existing.get(event.generator_id)
                if old is not None and _same(generator_event(
                        old, current_tags.get(event.generator_id, [])), event):
                    report.unchanged += 1
                    continue
                if old is None:
                    report.created += 1
                else:
                    report.updated += 1
                rows.append(_generator_row(event, rt))
                had = set(current_tags.get(event.generator_id, []))
                dropped.extend(had - set(event.tag_ids))
                new_tags.extend({"tag_id": t, "generator_id": event.generator_id}
                                for t in event.tag_ids if t not in had)
                await uow.record(event.generator_id, [event], actor=actor)
            postgres = rt.db.is_postgres
            await upsert(session, GENERATORS, rows, "generator_id", postgres=postgres)
            for part in chunks(dropped):
                await session.exec(delete(Tag).where(col(Tag.tag_id).in_(part)))
            if new_tags:
                # A plain insert, not an upsert: if a concurrent import took one of these
                # tags meanwhile, the key clash makes the retry report it as taken.
                await session.exec(insert(TAGS), params=new_tags)
            await uow.commit()
        return report

    return await with_retries(settings_of(rt).write_retries, work)


async def register_generator(
    rt: ServiceRuntime, principal: Principal, event: GeneratorRegistered
) -> ImportReport:
    """Register or update one generator; a tag held by another generator is a conflict."""
    report = await save_generators(rt, principal, [(0, event)])
    if report.errors:
        error = report.errors[0]
        raise problem(Rejection("tag-taken", error.field, error.reason))
    return report


async def import_generators(
    rt: ServiceRuntime, principal: Principal, data: bytes, *, max_rows: int
) -> ImportReport:
    """Bulk import from CSV: good rows kept (one transaction), bad rows reported by line.

    Raises ``CsvFileError`` when the file as a whole is unreadable (encoding, header).
    """
    parsed = parse_generators_csv(decode_csv(data), max_rows=max_rows)
    report = await save_generators(rt, principal, [(r.line, r.event) for r in parsed.rows])
    report.errors = sorted([*parsed.errors, *report.errors], key=lambda e: e.line)
    return report


async def change_generator_status(
    rt: ServiceRuntime, principal: Principal, generator_id: str, active: bool, reason: str
) -> Generator:
    """Deactivate (moved away, merged) or reactivate a generator; scans of an inactive
    generator's tags are then rejected."""
    async with rt.store.unit_of_work() as uow:
        gen = await uow.session.get(Generator, generator_id, with_for_update=True)
        if gen is None:
            raise not_found("generator", generator_id, field="generator_id")
        if gen.active != active:
            gen.active = active
            gen.updated_at = rt.clock.now()
            uow.session.add(gen)
            await uow.record(generator_id, [GeneratorStatusChanged(
                generator_id=generator_id, active=active, reason=reason)],
                actor=principal.actor())
        await uow.commit()
        return gen


async def register_collector(
    rt: ServiceRuntime, principal: Principal, event: CollectorRegistered
) -> Change:
    """Register or rename a collection company, or change the communes it serves."""
    async with rt.store.unit_of_work() as uow:
        session = uow.session
        row = await session.get(Collector, event.collector_id, with_for_update=True)
        served = await served_communes(session, event.collector_id)
        if row is not None and row.name == event.name and served == frozenset(event.communes):
            return "unchanged"
        session.add(Collector(collector_id=event.collector_id, name=event.name)
                    if row is None else _set(row, name=event.name))
        await session.exec(delete(CollectorCommune).where(
            col(CollectorCommune.collector_id) == event.collector_id))
        session.add_all(CollectorCommune(collector_id=event.collector_id, commune=c)
                        for c in event.communes)
        await uow.record(f"collector:{event.collector_id}", [event], actor=principal.actor())
        await uow.commit()
        return "created" if row is None else "updated"


async def register_vehicle(
    rt: ServiceRuntime, principal: Principal, event: VehicleRegistered
) -> Change:
    """Register or update a vehicle of a known collector; plates are unique."""
    async with rt.store.unit_of_work() as uow:
        session = uow.session
        if await session.get(Collector, event.collector_id) is None:
            raise problem(Rejection("unknown-collector", "collector_id",
                                    f"no collector {event.collector_id!r}"))
        other = (await session.exec(select(Vehicle).where(
            col(Vehicle.plate) == event.plate,
            col(Vehicle.vehicle_id) != event.vehicle_id))).first()
        if other is not None:
            raise problem(Rejection("plate-taken", "plate",
                                    f"plate {event.plate!r} is vehicle {other.vehicle_id}"))
        values = event.model_dump()
        row = await session.get(Vehicle, event.vehicle_id, with_for_update=True)
        if row is not None and row.model_dump() == values:
            return "unchanged"
        session.add(Vehicle(**values) if row is None else _set(row, **values))
        await uow.record(f"vehicle:{event.vehicle_id}", [event], actor=principal.actor())
        await uow.commit()
        return "created" if row is None else "updated"


async def register_device(
    rt: ServiceRuntime, principal: Principal, event: DeviceRegistered,
    vehicle_id: str | None, active: bool,
) -> Change:
    """Register a collector's device, optionally bound to one of its vehicles.

    The binding is kept in this service's table: ``DeviceRegistered`` has no vehicle field.
    """
    async with rt.store.unit_of_work() as uow:
        session = uow.session
        if await session.get(Collector, event.collector_id) is None:
            raise problem(Rejection("unknown-collector", "collector_id",
                                    f"no collector {event.collector_id!r}"))
        if vehicle_id is not None:
            vehicle = await session.get(Vehicle, vehicle_id)
            if vehicle is None or vehicle.collector_id != event.collector_id:
                raise problem(Rejection("unknown-vehicle", "vehicle_id",
                                        f"collector {event.collector_id} has no vehicle "
                                        f"{vehicle_id!r}"))
        row = await session.get(Device, event.device_id, with_for_update=True)
        wanted = Device(device_id=event.device_id, collector_id=event.collector_id,
                        vehicle_id=vehicle_id, active=active)
        if row is not None and row.model_dump() == wanted.model_dump():
            return "unchanged"
        emit = row is None or row.collector_id != event.collector_id
        session.add(wanted if row is None else _set(row, **wanted.model_dump()))
        if emit:
            await uow.record(f"device:{event.device_id}", [event], actor=principal.actor())
        await uow.commit()
        return "created" if row is None else "updated"


async def register_collection_point(
    rt: ServiceRuntime, principal: Principal, event: CollectionPointRegistered
) -> Change:
    """Register or update a collection point (điểm tập kết)."""
    async with rt.store.unit_of_work() as uow:
        values = event.model_dump()
        row = await uow.session.get(CollectionPoint, event.point_id, with_for_update=True)
        if row is not None and row.model_dump() == values:
            return "unchanged"
        uow.session.add(CollectionPoint(**values) if row is None else _set(row, **values))
        await uow.record(f"point:{event.point_id}", [event], actor=principal.actor())
        await uow.commit()
        return "created" if row is None else "updated"


def _set(row: Any, **values: Any) -> Any:
    for name, value in values.items():
        setattr(row, name, value)
    return row
