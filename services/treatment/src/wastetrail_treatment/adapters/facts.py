"""Tables → the domain's facts, for the fate of a load and the certificate of a batch."""

from __future__ import annotations

from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts.enums import AcceptanceStatus, Category, TreatmentMethod
from wastetrail_contracts.fate import (
    BatchFacts,
    LoadFacts,
    ReceiptFacts,
    RedirectFacts,
    TripFacts,
)

from wastetrail_treatment.adapters.tables import (
    Allocation,
    Batch,
    Load,
    Plant,
    Receipt,
    Redirect,
    TreatmentRecord,
    Trip,
)
from wastetrail_treatment.domain.certificate import (
    Certificate,
    ReceiptEntry,
    RedirectEntry,
    Subject,
    TreatmentEntry,
    build_certificate,
)

# A redirect chain deeper than this is a data error, not a plant network (guards recursion).
MAX_REDIRECT_DEPTH = 20


async def first_receipt(session: AsyncSession, kind: Literal["batch", "trip"],
                        subject_id: str) -> Receipt | None:
    """The receipt of a batch (or a direct-haul trip) at the plant it was sent to."""
    query = select(Receipt).where(col(Receipt.redirect_id).is_(None))
    if kind == "batch":
        query = query.where(col(Receipt.batch_id) == subject_id)
    else:
        query = query.where(col(Receipt.trip_id) == subject_id, col(Receipt.batch_id).is_(None))
    return (await session.exec(query)).first()


async def _treatments(session: AsyncSession, receipt_id: str) -> list[TreatmentRecord]:
    return list((await session.exec(
        select(TreatmentRecord).where(col(TreatmentRecord.receipt_id) == receipt_id)
        .order_by(col(TreatmentRecord.treated_at), col(TreatmentRecord.treatment_id))
    )).all())


async def _redirects(session: AsyncSession, receipt_id: str) -> list[Redirect]:
    return list((await session.exec(
        select(Redirect).where(col(Redirect.receipt_id) == receipt_id)
        .order_by(col(Redirect.redirected_at), col(Redirect.redirect_id))
    )).all())


async def receipt_facts(session: AsyncSession, r: Receipt, depth: int = 0) -> ReceiptFacts:
    """A receipt with its treatment totals and redirects, following redirected parts."""
    records = await _treatments(session, r.receipt_id)
    totals: dict[TreatmentMethod, int] = {}
    for record in records:
        for method, grams in record.methods.items():
            totals[TreatmentMethod(method)] = totals.get(TreatmentMethod(method), 0) + grams
    redirects = []
    for x in await _redirects(session, r.receipt_id):
        nested = None
        if x.received_receipt_id is not None and depth < MAX_REDIRECT_DEPTH:
            inner = await session.get(Receipt, x.received_receipt_id)
            nested = await receipt_facts(session, inner, depth + 1) if inner else None
        redirects.append(RedirectFacts(
            x.redirect_id, x.grams, "plant" if x.destination_kind == "plant" else "station",
            x.destination_id, x.redirected_at, actor=x.actor, receipt=nested))
    return ReceiptFacts(
        r.receipt_id, r.plant_id, r.received_grams, r.accepted_grams, r.refused_grams,
        r.received_at, actor=r.actor,
        treated=tuple((m, totals[m]) for m in TreatmentMethod if m in totals),
        last_treated_at=records[-1].treated_at if records else None,
        redirects=tuple(redirects),
    )


async def trip_facts(session: AsyncSession, trip: Trip) -> TripFacts:
    """Everything the fate of the loads of this trip depends on."""
    loads = (await session.exec(
        select(col(Load.load_id), col(Load.category), col(Load.grams))
        .where(col(Load.trip_id) == trip.trip_id)
    )).all()
    mine = (await session.exec(
        select(Batch).join(Allocation, col(Batch.batch_id) == col(Allocation.batch_id))
        .where(col(Allocation.trip_id) == trip.trip_id)
        .order_by(col(Batch.consolidated_at), col(Batch.batch_id))
    )).all()
    # Every allocation of those batches: a batch's quantities are shared among its trips.
    allocations: dict[str, dict[str, int]] = {b.batch_id: {} for b in mine}
    for a in (await session.exec(
        select(Allocation).where(col(Allocation.batch_id).in_(list(allocations)))
    )).all():
        allocations[a.batch_id][a.trip_id] = a.grams
    batches = []
    for batch in mine:
        receipt = await first_receipt(session, "batch", batch.batch_id)
        batches.append(BatchFacts(
            batch.batch_id, batch.station_id, Category(batch.category),
            allocations[batch.batch_id], plant_id=batch.plant_id,
            dispatched_at=batch.dispatched_at, actor=batch.dispatched_by,
            receipt=await receipt_facts(session, receipt) if receipt else None))
    direct = await first_receipt(session, "trip", trip.trip_id)
    at_station = trip.weighed_site == "station"  # a plant weighing belongs to the receipt
    return TripFacts(
        trip_id=trip.trip_id,
        loads=tuple(LoadFacts(load_id, Category(category), grams)
                    for load_id, category, grams in loads),
        weighed_net_grams=trip.net_grams if at_station else None,
        weighed_site_id=trip.weighed_site_id if at_station else None,
        weighed_at=trip.weighed_at if at_station else None,
        batches=tuple(batches),
        direct_receipt=await receipt_facts(session, direct) if direct else None,
    )


async def _receipt_entry(session: AsyncSession, r: Receipt) -> ReceiptEntry:
    plant = await session.get(Plant, r.plant_id)
    return ReceiptEntry(
        receipt_id=r.receipt_id, plant_id=r.plant_id, plant_name=plant.name if plant else "",
        plant_commune=plant.commune if plant else "", received_at=r.received_at,
        declared_grams=r.declared_grams, received_grams=r.received_grams,
        accepted_grams=r.accepted_grams, refused_grams=r.refused_grams,
        status=AcceptanceStatus(r.status), refusal_reason=r.refusal_reason,
        discrepancy=r.discrepancy, over_capacity=r.over_capacity, redirect_id=r.redirect_id,
        treatments=tuple(
            TreatmentEntry(
                t.treatment_id, t.treated_at,
                tuple((TreatmentMethod(m), g) for m, g in t.methods.items()),
                tuple((str(o["kind"]), int(o["grams"])) for o in t.outputs),
                t.energy_kwh, t.residue_grams, t.residue_destination)
            for t in await _treatments(session, r.receipt_id)),
        redirects=tuple(
            RedirectEntry(x.redirect_id, x.grams,
                          "plant" if x.destination_kind == "plant" else "station",
                          x.destination_id, x.redirected_at, x.received_receipt_id)
            for x in await _redirects(session, r.receipt_id)),
    )


async def certificate(session: AsyncSession, kind: Literal["batch", "trip"],
                      subject_id: str) -> Certificate | None:
    """The certificate of treatment of a batch or direct-haul trip; None before any receipt."""
    first = await first_receipt(session, kind, subject_id)
    if first is None:
        return None
    # The first receipt, then the receipts of every redirected part, breadth first.
    entries: list[ReceiptEntry] = []
    queue = [first]
    while queue and len(entries) <= MAX_REDIRECT_DEPTH:
        receipt = queue.pop(0)
        entry = await _receipt_entry(session, receipt)
        entries.append(entry)
        for x in entry.redirects:
            nxt = await session.get(Receipt, x.received_in) if x.received_in else None
            if nxt is not None:
                queue.append(nxt)
    if kind == "batch":
        batch = await session.get(Batch, subject_id)
        subject = Subject("batch", subject_id, Category(first.category),
                          origin_id=batch.station_id if batch else "",
                          declared_grams=first.declared_grams,
                          dispatched_at=batch.dispatched_at if batch else None,
                          seal_number=batch.seal_number if batch else None)
    else:
        trip = await session.get(Trip, subject_id)
        subject = Subject("trip", subject_id, Category(first.category),
                          origin_id=(trip.vehicle_id or "") if trip else "",
                          declared_grams=first.declared_grams,
                          dispatched_at=trip.closed_at if trip else None)
    return build_certificate(subject, entries)
