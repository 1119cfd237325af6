"""Load scans and refusals, one at a time or as an offline device's batch.

A batch is judged scan by scan (accepted, duplicate or rejected with its reason), but
read and written in bulk: one query for the known keys, one for the trips, one for the
tags, one for typed-in codes, one multi-row insert and one unit of work for every accepted
load. A scan's load id comes from its device and idempotency key, so a retried scan finds
its load and is answered "duplicate" with the original id instead of making a second event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import col
from wastetrail_contracts.events.collection import LoadCollected, LoadRefused
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import UnitOfWork

from wastetrail_collection.adapters.repository import (
    existing_ids,
    generators_by_code,
    generators_by_tag,
    trips_with_capacity,
)
from wastetrail_collection.adapters.tables import LOADS, REFUSALS, Load, Refusal
from wastetrail_collection.domain.ids import load_id_for, refusal_id_for
from wastetrail_collection.domain.rules import GeneratorFacts, Rejection
from wastetrail_collection.domain.scans import (
    RefusalInput,
    ScanInput,
    decide_load,
    decide_refusal,
)
from wastetrail_collection.handlers.common import calling_device, settings_of, with_retries

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class InvalidItem:
    """A scan or refusal whose JSON did not even have the right shape."""

    idempotency_key: str | None
    rejection: Rejection


@dataclass(frozen=True)
class Outcome:
    """What became of one scan or refusal; ``record_id`` is the load or refusal id."""

    status: Status
    idempotency_key: str | None
    record_id: str | None = None
    rejection: Rejection | None = None


async def _generators(
    uow: UnitOfWork, items: Sequence[ScanInput | RefusalInput]
) -> tuple[dict[str, GeneratorFacts], dict[str, GeneratorFacts]]:
    tags = {i.tag_id for i in items if i.tag_id is not None}
    codes = {i.generator_code for i in items if i.generator_code is not None}
    by_tag = await generators_by_tag(uow.session, tags) if tags else {}
    by_code = await generators_by_code(uow.session, codes) if codes else {}
    return by_tag, by_code


def _whose(
    item: ScanInput | RefusalInput, by_tag: dict[str, GeneratorFacts],
    by_code: dict[str, GeneratorFacts],
) -> GeneratorFacts | None:
    if item.tag_id is not None:
        return by_tag.get(item.tag_id)
    return by_code.get(item.generator_code) if item.generator_code is not None else None


async def record_scans(
    rt: ServiceRuntime, principal: Principal, items: Sequence[ScanInput | InvalidItem]
) -> list[Outcome]:
    """Judge every scan, record the accepted ones as loads and LoadCollected events."""
    settings = settings_of(rt)
    zone = ZoneInfo(settings.report_timezone)

    async def work() -> list[Outcome]:
        async with rt.store.unit_of_work() as uow:
            device = await calling_device(uow, principal)
            policy, now = settings.scan_policy(), rt.clock.now()
            scans = [i for i in items if isinstance(i, ScanInput)]
            ids = {s.idempotency_key: load_id_for(device.device_id, s.idempotency_key)
                   for s in scans}
            # Lock the trips first: a concurrent batch for the same trip then waits for
            # this one, and the key look-up below already sees what that batch committed.
            trips = await trips_with_capacity(uow.session, {s.trip_id for s in scans},
                                              lock=True)
            seen = await existing_ids(uow.session, col(Load.load_id), ids.values())
            by_tag, by_code = await _generators(uow, scans)
            outcomes: list[Outcome] = []
            rows: list[dict[str, Any]] = []
            accepted: dict[str, list[LoadCollected]] = defaultdict(list)
            for item in items:
                if isinstance(item, InvalidItem):
                    outcomes.append(Outcome("rejected", item.idempotency_key,
                                            rejection=item.rejection))
                    continue
                load_id = ids[item.idempotency_key]
                if load_id in seen:
                    outcomes.append(Outcome("duplicate", item.idempotency_key, load_id))
                    continue
                found = trips.get(item.trip_id)
                decided = decide_load(item, load_id=load_id, device=device,
                                      trip=found[1] if found else None,
                                      generator=_whose(item, by_tag, by_code), now=now,
                                      policy=policy)
                if isinstance(decided, Rejection):
                    outcomes.append(Outcome("rejected", item.idempotency_key,
                                            rejection=decided))
                    continue
                seen.add(load_id)
                accepted[decided.trip_id].append(decided)
                rows.append({**decided.model_dump(), "category": decided.category.value,
                             "day": decided.collected_at.astimezone(zone).date()})
                outcomes.append(Outcome("accepted", item.idempotency_key, load_id))
            if not rows:
                return outcomes
            # Core insert: one multi-row statement, without the ORM's per-row bookkeeping.
            await uow.session.exec(insert(LOADS), params=rows)
            actor = principal.actor()
            for trip_id, loads in accepted.items():
                trip = trips[trip_id][0]
                trip.load_count += len(loads)
                trip.scanned_total_grams += sum(load.grams for load in loads)
                uow.session.add(trip)
                for load in loads:
                    # One call per load, so each event's occurred_at is its own scan time.
                    await uow.record(trip_id, [load], actor=actor,
                                     occurred_at=load.collected_at)
            await uow.commit()
            return outcomes

    return await with_retries(settings.write_retries, work)


async def record_refusals(
    rt: ServiceRuntime, principal: Principal, items: Sequence[RefusalInput | InvalidItem]
) -> list[Outcome]:
    """Judge every refusal, record the valid ones as LoadRefused events for the commune."""
    settings = settings_of(rt)
    zone = ZoneInfo(settings.report_timezone)

    async def work() -> list[Outcome]:
        async with rt.store.unit_of_work() as uow:
            device = await calling_device(uow, principal)
            policy, now = settings.scan_policy(), rt.clock.now()
            refusals = [i for i in items if isinstance(i, RefusalInput)]
            ids = {r.idempotency_key: refusal_id_for(device.device_id, r.idempotency_key)
                   for r in refusals}
            trips = await trips_with_capacity(
                uow.session, {r.trip_id for r in refusals if r.trip_id is not None}, lock=True)
            seen = await existing_ids(uow.session, col(Refusal.refusal_id), ids.values())
            by_tag, by_code = await _generators(uow, refusals)
            outcomes: list[Outcome] = []
            decided_all: list[tuple[RefusalInput, LoadRefused]] = []
            for item in items:
                if isinstance(item, InvalidItem):
                    outcomes.append(Outcome("rejected", item.idempotency_key,
                                            rejection=item.rejection))
                    continue
                refusal_id = ids[item.idempotency_key]
                if refusal_id in seen:
                    outcomes.append(Outcome("duplicate", item.idempotency_key, refusal_id))
                    continue
                found = trips.get(item.trip_id) if item.trip_id is not None else None
                decided = decide_refusal(item, device=device, trip=found[1] if found else None,
                                         generator=_whose(item, by_tag, by_code), now=now,
                                         policy=policy)
                if isinstance(decided, Rejection):
                    outcomes.append(Outcome("rejected", item.idempotency_key,
                                            rejection=decided))
                    continue
                seen.add(refusal_id)
                decided_all.append((item, decided))
                outcomes.append(Outcome("accepted", item.idempotency_key, refusal_id))
            if not decided_all:
                return outcomes
            # LoadRefused carries no position; the table keeps it for the commune's map.
            rows = [{**r.model_dump(), "reason": r.reason.value,
                     "category": r.category.value if r.category else None,
                     "latitude": i.latitude, "longitude": i.longitude,
                     "day": r.refused_at.astimezone(zone).date()} for i, r in decided_all]
            await uow.session.exec(insert(REFUSALS), params=rows)
            actor = principal.actor()
            for _, refusal in decided_all:
                # With its trip's events when it has one, so it is ordered among them.
                await uow.record(refusal.trip_id or refusal.refusal_id, [refusal],
                                 actor=actor, occurred_at=refusal.refused_at)
            await uow.commit()
            return outcomes

    return await with_retries(settings.write_retries, work)

