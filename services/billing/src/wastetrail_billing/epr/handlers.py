"""Commands of the EPR scheme (admin, producers, cashiers, collectors) and chain events.

Each command takes an open unit of work and records its events there; the caller
commits. Errors are ``Problem``s naming the offending field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel, col, select
from wastetrail_contracts import Actor
from wastetrail_contracts.base import MAX_TOTAL_GRAMS
from wastetrail_contracts.enums import ClaimRejection, Material, PaymentChannel, TreatmentMethod
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.events.epr import (
    DepositClaimOpened,
    DepositPaid,
    PackagingRegistered,
    ProducerRegistered,
    UnitsPlacedOnMarket,
)
from wastetrail_contracts.events.transfer import BatchConsolidated
from wastetrail_contracts.events.treatment import BatchReceived, TreatmentRecorded
from wastetrail_contracts.pricing.periods import billing_month, local_date
from wastetrail_runtime.problems import conflict, not_found, unprocessable
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.ledger import post_entry
from wastetrail_billing.epr import domain
from wastetrail_billing.epr.settlement import (
    DIRECT_HAUL,
    PENDING,
    REJECTED,
    claim_stream,
    credit_waiting,
    lock_scheme,
    reject,
    settle_loads,
    settle_trips,
    trips_of_batch,
)
from wastetrail_billing.epr.tables import (
    EprChainBatchTrip,
    EprChainLoad,
    EprChainReceipt,
    EprChainTreatment,
    EprClaim,
    EprClaimSlot,
    EprDepositPayment,
    EprMarketReport,
    EprPackaging,
    EprProducer,
    EprReturn,
)
from wastetrail_billing.handlers.common import account_of_generator
from wastetrail_billing.handlers.projections import defer_insert, flush_deferred

_MATERIALS = {m.value for m in Material}
_PENDING_LOADS = "epr.pending_claim_loads"  # session.info: (transaction, load ids)


def producer_stream(producer_id: str) -> str:
    """The event stream of a producer: registration, packaging, reports, deposits."""
    return f"producer:{producer_id}"


async def _insert_ignore(
    uow: UnitOfWork, model: type[SQLModel], values: dict[str, object]
) -> bool:
    """Insert a row unless its key exists; True when inserted (race-safe first-wins)."""
    table = model.__table__  # type: ignore[attr-defined]
    insert = pg_insert if uow.store.db.is_postgres else sqlite_insert
    result = await uow.session.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_producer(uow: UnitOfWork, producer_id: str) -> EprProducer:
    """The producer, or a 404 problem."""
    producer = await uow.session.get(EprProducer, producer_id)
    if producer is None:
        raise not_found("producer", producer_id, field="producer_id")
    return producer


# ---------------------------------------------------------------- registration


async def register_producer(
    uow: UnitOfWork, event: ProducerRegistered, *, actor: Actor
) -> bool:
    """Register (or update the details of) a producer; False when nothing changed."""
    now = uow.store.clock.now()
    producer = await uow.session.get(EprProducer, event.producer_id)
    if producer is not None and (producer.name, producer.tax_code, producer.kind) == (
        event.name, event.tax_code, event.kind
    ):
        return False
    producer = producer or EprProducer(producer_id=event.producer_id, name="", tax_code="",
                                       kind="", registered_at=now)
    producer.name, producer.tax_code, producer.kind = event.name, event.tax_code, event.kind
    uow.session.add(producer)
    await uow.record(producer_stream(event.producer_id), [event], actor=actor)
    return True


async def packaging_versions(uow: UnitOfWork, sku: str) -> list[domain.PackagingVersion]:
    """Every registered version of a SKU."""
    rows = (await uow.session.exec(select(EprPackaging).where(EprPackaging.sku == sku))).all()
    return [
        domain.PackagingVersion(sku=r.sku, producer_id=r.producer_id,
                                material=Material(r.material), unit_grams=r.unit_grams,
                                deposit_per_unit=r.deposit_per_unit,
                                effective_from=r.effective_from)
        for r in rows
    ]


async def register_packaging(
    uow: UnitOfWork, event: PackagingRegistered, *, actor: Actor
) -> bool:
    """Register a version of a SKU; False when the identical version already exists.

    A SKU belongs to one producer and is made of one material for life; a version, once
    registered, is never edited (claims and reports were priced with it) — a new deposit
    or unit weight is a new version with a later ``effective_from``.
    """
    await get_producer(uow, event.producer_id)
    versions = await packaging_versions(uow, event.sku)
    for v in versions:
        if v.producer_id != event.producer_id:
            raise conflict("sku-taken", f"SKU {event.sku!r} belongs to another producer",
                           field="sku")
        if v.material is not event.material:
            raise conflict("sku-material",
                           f"SKU {event.sku!r} is registered as {v.material.value}",
                           field="material")
        if v.effective_from == event.effective_from:
            if (v.unit_grams, v.deposit_per_unit) == (event.unit_grams, event.deposit_per_unit):
                return False
            raise conflict("packaging-version-exists",
                           f"SKU {event.sku!r} already has a version from "
                           f"{event.effective_from.isoformat()}; register a later one",
                           field="effective_from")
    uow.session.add(EprPackaging(
        sku=event.sku, effective_from=event.effective_from, producer_id=event.producer_id,
        material=event.material.value, unit_grams=event.unit_grams,
        deposit_per_unit=event.deposit_per_unit, registered_at=uow.store.clock.now(),
    ))
    await uow.record(producer_stream(event.producer_id), [event], actor=actor)
    return True


# ---------------------------------------------------------------- market and deposits


@dataclass(frozen=True)
class MarketReport:
    """A producer's report of units of a SKU placed on a province's market in a month."""

    report_id: str
    producer_id: str
    sku: str
    period: str
    province: str
    units: int


async def report_units(
    uow: UnitOfWork, report: MarketReport, *, actor: Actor
) -> tuple[EprMarketReport, bool]:
    """Record units placed on the market → deposits owed (Dr receivable / Cr deposits).

    The deposit rate is the SKU's version in force on the first day of the period.
    Re-sending the same report is a no-op (False); the same id with other figures is a
    conflict.
    """
    await lock_scheme(uow)
    existing = await uow.session.get(EprMarketReport, report.report_id)
    if existing is not None:
        same = (existing.producer_id, existing.sku, existing.period, existing.province,
                existing.units) == (report.producer_id, report.sku, report.period,
                                    report.province, report.units)
        if not same:
            raise conflict("report-exists",
                           f"report {report.report_id!r} was filed with other figures",
                           field="report_id")
        return existing, False
    await get_producer(uow, report.producer_id)
    versions = await packaging_versions(uow, report.sku)
    if not versions or versions[0].producer_id != report.producer_id:
        raise unprocessable("unknown-sku", f"producer {report.producer_id!r} has no SKU "
                            f"{report.sku!r}", field="sku")
    version = domain.packaging_on(versions, billing_month(report.period).first_day)
    if version is None:
        raise unprocessable("no-packaging-version",
                            f"SKU {report.sku!r} has no version in force on {report.period}-01",
                            field="period")
    too_large = domain.overflowing_product(report.units, version,
                                           max_grams=MAX_TOTAL_GRAMS)
    if too_large is not None:
        raise unprocessable("quantity-too-large", f"{report.units} units of {report.sku}: "
                            f"their {too_large} exceed what one report may declare",
                            field="units")
    now = uow.store.clock.now()
    owed = report.units * version.deposit_per_unit
    row = EprMarketReport(
        report_id=report.report_id, producer_id=report.producer_id, sku=report.sku,
        material=version.material.value, unit_grams=version.unit_grams, period=report.period,
        province=report.province, units=report.units,
        deposit_per_unit=version.deposit_per_unit, deposit_owed=owed, reported_at=now,
        reported_on=local_date(now),
    )
    uow.session.add(row)
    await uow.record(producer_stream(report.producer_id), [UnitsPlacedOnMarket(
        report_id=report.report_id, producer_id=report.producer_id, sku=report.sku,
        period=report.period, province=report.province, units=report.units,
        deposit_owed=owed, deposit_per_unit=version.deposit_per_unit,
    )], actor=actor)
    if owed > 0:
        await post_entry(uow, domain.market_entry(f"epr-mkt-{report.report_id}",
                                                  report.report_id, report.producer_id, owed),
                         actor=actor)
    return row, True


@dataclass(frozen=True)
class DepositPayment:
    """Deposits a producer paid into the escrow, as a cashier records the bank transfer."""

    payment_id: str
    producer_id: str
    amount: int
    reference: str
    paid_at: datetime
    channel: PaymentChannel = PaymentChannel.BANK_TRANSFER


async def record_deposit(
    uow: UnitOfWork, payment: DepositPayment, *, actor: Actor
) -> tuple[EprDepositPayment, int | None]:
    """Record a deposit into the escrow (Dr escrow / Cr receivable), then credit the
    confirmed claims that were waiting for money. Returns the row and how many claims
    were credited; None when the same payment was already recorded (a no-op)."""
    await lock_scheme(uow)
    existing = await uow.session.get(EprDepositPayment, payment.payment_id)
    if existing is not None:
        if (existing.producer_id, existing.amount, existing.reference) != (
            payment.producer_id, payment.amount, payment.reference
        ):
            raise conflict("payment-exists",
                           f"payment {payment.payment_id!r} was recorded with other figures",
                           field="payment_id")
        return existing, None
    await get_producer(uow, payment.producer_id)
    now = uow.store.clock.now()
    row = EprDepositPayment(
        payment_id=payment.payment_id, producer_id=payment.producer_id, amount=payment.amount,
        channel=payment.channel.value, reference=payment.reference, paid_at=payment.paid_at,
        paid_on=local_date(payment.paid_at), recorded_at=now, recorded_by=actor.id,
    )
    uow.session.add(row)
    await uow.record(producer_stream(payment.producer_id), [DepositPaid(
        payment_id=payment.payment_id, producer_id=payment.producer_id, amount=payment.amount,
        channel=payment.channel, reference=payment.reference, paid_at=payment.paid_at,
    )], actor=actor)
    await post_entry(uow, domain.deposit_entry(f"epr-dep-{payment.payment_id}",
                                               payment.payment_id, payment.producer_id,
                                               payment.amount), actor=actor)
    return row, await credit_waiting(uow)


# ---------------------------------------------------------------- returns


@dataclass(frozen=True)
class ReturnLine:
    """Returned packaging: units of a SKU, grams of a SKU, or grams of a material."""

    sku: str | None = None
    material: Material | None = None
    units: int | None = None
    grams: int | None = None


@dataclass(frozen=True)
class PackagingReturn:
    """What a collector records when a household hands back packaging at a load."""

    idempotency_key: str
    load_id: str
    generator_id: str
    province: str
    lines: tuple[ReturnLine, ...]

    def digest(self) -> str:
        """A fingerprint of the request, to tell a retry from a reused key."""
        body = json.dumps({
            "load_id": self.load_id, "generator_id": self.generator_id,
            "province": self.province,
            "lines": [[ln.sku, ln.material.value if ln.material else None, ln.units, ln.grams]
                      for ln in self.lines],
        }, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


def claim_id_for(idempotency_key: str, sku: str) -> str:
    """The claim id of a SKU in a return: the same return always yields the same ids."""
    digest = hashlib.sha256(f"{idempotency_key}\x00{sku}".encode()).hexdigest()
    return f"clm-{digest[:24]}"


async def _market_shares(
    uow: UnitOfWork, material: Material, province: str, day: date
) -> list[tuple[domain.MarketShare, domain.PackagingVersion]]:
    grams = (await uow.session.exec(
        select(EprMarketReport.sku, func.sum(EprMarketReport.units * EprMarketReport.unit_grams))
        .where(EprMarketReport.material == material.value, EprMarketReport.province == province)
        .group_by(col(EprMarketReport.sku))
    )).all()
    out: list[tuple[domain.MarketShare, domain.PackagingVersion]] = []
    for sku, market_grams in grams:
        version = domain.packaging_on(await packaging_versions(uow, sku), day)
        if version is not None and market_grams:
            out.append((domain.MarketShare(sku, version.unit_grams, int(market_grams)), version))
    return out


async def _resolve_lines(
    uow: UnitOfWork, ret: PackagingReturn, day: date
) -> list[tuple[domain.PackagingVersion, int]]:
    """Each line → (packaging version in force on the return day, units)."""
    out: list[tuple[domain.PackagingVersion, int]] = []
    for i, line in enumerate(ret.lines):
        if line.sku is not None:
            version = domain.packaging_on(await packaging_versions(uow, line.sku), day)
            if version is None:
                raise unprocessable("unknown-sku", f"SKU {line.sku!r} is not registered "
                                    f"(or not yet in force on {day.isoformat()})",
                                    field=f"lines.{i}.sku")
            units = line.units if line.units is not None else domain.units_in_weight(
                line.grams or 0, version.unit_grams)
            if units <= 0:
                raise unprocessable("less-than-a-unit", f"{line.grams} g of {line.sku} is less "
                                    f"than one {version.unit_grams} g unit",
                                    field=f"lines.{i}.grams")
            too_large = domain.overflowing_product(units, version)
            if too_large is not None:
                raise unprocessable("quantity-too-large", f"{units} units of {line.sku}: "
                                    f"their {too_large} exceed what one return may claim",
                                    field=f"lines.{i}.units")
            out.append((version, units))
            continue
        # The API admits a material only with grams.
        assert line.material is not None
        assert line.grams is not None
        shares = await _market_shares(uow, line.material, ret.province, day)
        split = domain.allocate_weight(line.grams, [s for s, _v in shares])
        if not split:
            raise unprocessable("no-packaging-on-market",
                                f"{line.grams} g of {line.material.value}: no packaging of "
                                f"that material placed on the market in {ret.province} "
                                "makes a whole unit", field=f"lines.{i}.grams")
        versions = {s.sku: v for s, v in shares}
        out.extend((versions[sku], units) for sku, units in split)
    skus = [v.sku for v, _u in out]
    if len(set(skus)) != len(skus):
        raise unprocessable("duplicate-sku", "a SKU appears twice in this return",
                            field="lines")
    return out


@dataclass(frozen=True)
class ReturnResult:
    """The claims a return opened (or, on a retry, had opened)."""

    claims: list[EprClaim]
    replayed: bool


async def _claims(uow: UnitOfWork, claim_ids: list[str]) -> list[EprClaim]:
    rows = (await uow.session.exec(
        select(EprClaim).where(col(EprClaim.claim_id).in_(claim_ids))
    )).all()
    by_id = {c.claim_id: c for c in rows}
    return [by_id[c] for c in claim_ids]


async def record_return(
    uow: UnitOfWork, ret: PackagingReturn, *, actor: Actor
) -> ReturnResult:
    """Open one pending claim per SKU returned, and decide what can be decided now.

    Fraud guards: a retried request (same idempotency key, same body) returns the same
    claims; a reused key with another body is a conflict; a second claim of a SKU at the
    same load is recorded and rejected at once as a duplicate; claims beyond the units
    the producer placed on the province's market are flagged ``flagged_over_market``.
    """
    await lock_scheme(uow)
    session = uow.session
    digest = ret.digest()
    previous = await session.get(EprReturn, ret.idempotency_key)
    if previous is not None:
        if previous.request_sha256 != digest:
            raise conflict("idempotency-key-reused",
                           "this idempotency key was used for a different return",
                           field="idempotency_key")
        return ReturnResult(await _claims(uow, json.loads(previous.claim_ids)), True)
    account_id = account_of_generator(ret.generator_id)
    now = uow.store.clock.now()
    lines = await _resolve_lines(uow, ret, local_date(now))
    claims: list[EprClaim] = []
    for version, units in lines:
        claim = EprClaim(
            claim_id=claim_id_for(ret.idempotency_key, version.sku),
            idempotency_key=ret.idempotency_key, account_id=account_id,
            generator_id=ret.generator_id, load_id=ret.load_id,
            producer_id=version.producer_id, sku=version.sku,
            material=version.material.value, province=ret.province, units=units,
            unit_grams=version.unit_grams, grams=units * version.unit_grams,
            deposit_per_unit=version.deposit_per_unit,
            amount=units * version.deposit_per_unit, status=PENDING, opened_at=now,
        )
        claim.flagged_over_market = domain.over_market(
            await _claimed_units(uow, version, ret.province) + units,
            await _placed_units(uow, version, ret.province),
        )
        first = await _insert_ignore(uow, EprClaimSlot, {
            "load_id": ret.load_id, "sku": version.sku, "claim_id": claim.claim_id})
        session.add(claim)
        await session.flush()
        await uow.record(claim_stream(claim.claim_id), [DepositClaimOpened(
            claim_id=claim.claim_id, account_id=account_id, generator_id=ret.generator_id,
            load_id=ret.load_id, producer_id=version.producer_id, sku=version.sku,
            material=version.material, units=units, grams=claim.grams, amount=claim.amount,
            deposit_per_unit=version.deposit_per_unit,
            flagged_over_market=claim.flagged_over_market, opened_at=now,
        )], actor=actor)
        if not first:
            slot = await session.get(EprClaimSlot, (ret.load_id, version.sku))
            await reject(uow, claim, ClaimRejection.DUPLICATE_CLAIM,
                         f"{version.sku} returned at load {ret.load_id} was already claimed "
                         f"(claim {slot.claim_id if slot else '?'})", now)
        claims.append(claim)
    session.add(EprReturn(
        idempotency_key=ret.idempotency_key, request_sha256=digest, load_id=ret.load_id,
        generator_id=ret.generator_id, account_id=account_id,
        claim_ids=json.dumps([c.claim_id for c in claims]), recorded_at=now,
        recorded_by=actor.id,
    ))
    await settle_loads(uow, [ret.load_id])
    return ReturnResult(claims, False)


async def _claimed_units(uow: UnitOfWork, version: domain.PackagingVersion, province: str) -> int:
    total = (await uow.session.exec(
        select(func.coalesce(func.sum(EprClaim.units), 0)).where(
            EprClaim.producer_id == version.producer_id, EprClaim.sku == version.sku,
            EprClaim.province == province, EprClaim.status != REJECTED)
    )).one()
    return int(total)


async def _placed_units(uow: UnitOfWork, version: domain.PackagingVersion, province: str) -> int:
    total = (await uow.session.exec(
        select(func.coalesce(func.sum(EprMarketReport.units), 0)).where(
            EprMarketReport.producer_id == version.producer_id,
            EprMarketReport.sku == version.sku, EprMarketReport.province == province)
    )).one()
    return int(total)


async def reject_claim(uow: UnitOfWork, claim_id: str, reason: str) -> EprClaim:
    """An administrator rejects a pending claim (e.g. after checking a flagged one)."""
    await lock_scheme(uow)
    claim = await uow.session.get(EprClaim, claim_id)
    if claim is None:
        raise not_found("claim", claim_id, field="claim_id")
    if claim.status != PENDING:
        raise conflict("claim-decided", f"claim {claim_id} is already {claim.status}",
                       field="claim_id")
    await reject(uow, claim, ClaimRejection.OTHER, reason, uow.store.clock.now())
    return claim


# ---------------------------------------------------------------- chain events


async def on_load_collected(event: LoadCollected, uow: UnitOfWork) -> None:
    """Project the load (trip, generator, category, weight); decide its claims.

    A load no pending claim waits for (nearly all of them) is only queued and written
    in bulk at commit with the batch's other loads; one a claim waits for is written at
    once (with everything queued before it) and its claims are decided.
    """
    await lock_scheme(uow)
    row: dict[str, object] = {
        "load_id": event.load_id, "trip_id": event.trip_id, "generator_id": event.generator_id,
        "category": event.category.value, "measure": event.measure, "grams": event.grams,
    }
    if event.load_id not in await _loads_with_pending_claims(uow):
        defer_insert(uow, EprChainLoad.__table__, event.load_id, row)  # type: ignore[attr-defined]
        return
    await flush_deferred(uow)
    await _insert_ignore(uow, EprChainLoad, row)
    waiting = (await uow.session.exec(
        select(EprClaim.claim_id).where(EprClaim.load_id == event.load_id,
                                        EprClaim.status == PENDING).limit(1)
    )).first()
    if waiting is not None:
        await settle_loads(uow, [event.load_id])


async def _loads_with_pending_claims(uow: UnitOfWork) -> frozenset[str]:
    """The loads pending claims wait for, read once per transaction (under the lock).

    Only a claim's own HTTP request opens claims, under the scheme lock this transaction
    already holds, so the set cannot grow while the transaction runs; a claim it lists
    that gets decided meanwhile is re-checked by the caller's exact query.
    """
    transaction = uow.session.sync_session.get_transaction()
    cached = uow.session.info.get(_PENDING_LOADS)
    if cached is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    loads = frozenset((await uow.session.exec(
        select(EprClaim.load_id).where(EprClaim.status == PENDING).distinct()
    )).all())
    uow.session.info[_PENDING_LOADS] = (transaction, loads)
    return loads


async def on_batch_consolidated(event: BatchConsolidated, uow: UnitOfWork) -> None:
    """Project which trips (and how many grams of each) the batch carries."""
    await lock_scheme(uow)
    for allocation in event.allocations:
        await _insert_ignore(uow, EprChainBatchTrip, {
            "batch_id": event.batch_id, "trip_id": allocation.trip_id,
            "category": event.category.value, "trip_grams": allocation.grams,
            "total_grams": event.total_grams,
        })
    await settle_trips(uow, [a.trip_id for a in event.allocations])


async def on_batch_received(event: BatchReceived, uow: UnitOfWork) -> None:
    """Project the plant's receipt; a direct-haul trip becomes a batch of its own."""
    await lock_scheme(uow)
    if event.batch_id is not None:
        batch_id = event.batch_id
    else:
        assert event.trip_id is not None  # the contract requires exactly one
        batch_id = f"{DIRECT_HAUL}{event.trip_id}"
        await _insert_ignore(uow, EprChainBatchTrip, {
            "batch_id": batch_id, "trip_id": event.trip_id, "category": event.category.value,
            "trip_grams": event.received_grams, "total_grams": event.received_grams,
        })
    await _insert_ignore(uow, EprChainReceipt, {
        "receipt_id": event.receipt_id, "batch_id": batch_id, "plant_id": event.plant_id,
        "status": event.status.value, "received_grams": event.received_grams,
        "accepted_grams": event.accepted_grams, "refused_grams": event.refused_grams,
        "refusal_reason": event.refusal_reason[:500],
    })
    await settle_trips(uow, await trips_of_batch(uow, batch_id))


async def on_treatment_recorded(event: TreatmentRecorded, uow: UnitOfWork) -> None:
    """Project how much of the receipt was recycled (and which materials came out)."""
    await lock_scheme(uow)
    materials: dict[str, int] = {}
    for output in event.outputs:
        kind = output.kind.strip().lower()
        if kind in _MATERIALS and output.grams > 0:
            materials[kind] = materials.get(kind, 0) + output.grams
    await _insert_ignore(uow, EprChainTreatment, {
        "treatment_id": event.treatment_id, "receipt_id": event.receipt_id,
        "treated_grams": event.treated_grams,
        "recycled_grams": event.methods.get(TreatmentMethod.RECYCLING, 0),
        "methods_json": json.dumps({m.value: g for m, g in event.methods.items()},
                                   sort_keys=True),
        "materials_json": json.dumps(materials, sort_keys=True),
    })
    receipt = await uow.session.get(EprChainReceipt, event.receipt_id)
    if receipt is not None:
        await settle_trips(uow, await trips_of_batch(uow, receipt.batch_id))

