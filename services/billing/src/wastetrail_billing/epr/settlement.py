"""Deciding and paying claims: the chain's facts → ``decide_claim`` → events and ledger.

Every change that can move a claim (a return, a chain event, a deposit, a manual
rejection) runs under one PostgreSQL transaction-level advisory lock, ``lock_scheme``.
Why: the facts a claim needs arrive on three topics through three consumer groups and
the HTTP API, each in its own transaction. Without a common lock two of them could run
at once, each missing the other's uncommitted rows, and a claim whose last fact arrived
in that window would stay pending forever. Under the lock, whoever comes second sees
what the first committed (READ COMMITTED reads a fresh snapshot per statement). The
same lock serialises escrow spending, so the escrow check and the credit cannot race.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import text
from sqlmodel import col, select
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.enums import AcceptanceStatus, ClaimRejection, Material
from wastetrail_contracts.events.epr import (
    DepositClaimConfirmed,
    DepositClaimCredited,
    DepositClaimRejected,
)
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.ledger import balance, post_entry
from wastetrail_billing.domain.ledger import natural_balance
from wastetrail_billing.epr import domain
from wastetrail_billing.epr.tables import (
    EprChainBatchTrip,
    EprChainLoad,
    EprChainReceipt,
    EprChainTreatment,
    EprClaim,
)

# Arbitrary but fixed: the advisory-lock key of the EPR scheme ("EPR" in ASCII).
EPR_LOCK_KEY = 0x455052
DIRECT_HAUL = "direct:"  # batch key of a trip hauled straight to a plant (no batch)

PENDING, CONFIRMED, CREDITED, REJECTED = "pending", "confirmed", "credited", "rejected"
_LOCKED_IN = "epr.scheme_locked_in"  # session.info: the transaction holding the lock


async def lock_scheme(uow: UnitOfWork) -> None:
    """Serialise every EPR state change (see the module docstring); held until commit.

    Taken once per transaction: the lock is held until commit anyway, and a consumer
    batch calls this for each of its hundreds of events (a round trip each otherwise).
    """
    if not uow.store.db.is_postgres:
        return
    transaction = uow.session.sync_session.get_transaction()
    if transaction is not None and uow.session.info.get(_LOCKED_IN) is transaction:
        return
    await uow.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EPR_LOCK_KEY})
    uow.session.info[_LOCKED_IN] = uow.session.sync_session.get_transaction()


def claim_stream(claim_id: str) -> str:
    """The event stream of one claim."""
    return f"claim:{claim_id}"


def refund_entry_id(claim_id: str) -> str:
    """The journal entry id of a claim's refund (one per claim, so never credited twice)."""
    return f"epr-ref-{claim_id}"


# ---------------------------------------------------------------- reading the chain


async def _batch_legs(uow: UnitOfWork, trip_id: str) -> dict[str, list[domain.BatchLeg]]:
    """The batches carrying a trip, per category, with their receipts and treatments."""
    session = uow.session
    shares = (await session.exec(
        select(EprChainBatchTrip).where(EprChainBatchTrip.trip_id == trip_id)
    )).all()
    batch_ids = [s.batch_id for s in shares]
    receipts = (await session.exec(
        select(EprChainReceipt).where(col(EprChainReceipt.batch_id).in_(batch_ids))
        .order_by(col(EprChainReceipt.receipt_id))
    )).all() if batch_ids else []
    receipt_ids = [r.receipt_id for r in receipts]
    treatments = (await session.exec(
        select(EprChainTreatment).where(col(EprChainTreatment.receipt_id).in_(receipt_ids))
        .order_by(col(EprChainTreatment.treatment_id))
    )).all() if receipt_ids else []
    by_receipt: dict[str, list[EprChainTreatment]] = defaultdict(list)
    for t in treatments:
        by_receipt[t.receipt_id].append(t)
    facts_by_batch: dict[str, list[domain.ReceiptFacts]] = defaultdict(list)
    for r in receipts:
        facts_by_batch[r.batch_id].append(_receipt_facts(r, by_receipt[r.receipt_id]))
    legs: dict[str, list[domain.BatchLeg]] = defaultdict(list)
    for share in sorted(shares, key=lambda s: s.batch_id):
        legs[share.category].append(domain.BatchLeg(
            batch_id=share.batch_id, trip_grams=share.trip_grams,
            total_grams=share.total_grams, receipts=tuple(facts_by_batch[share.batch_id]),
        ))
    return legs


def _receipt_facts(
    receipt: EprChainReceipt, treatments: Sequence[EprChainTreatment]
) -> domain.ReceiptFacts:
    methods: dict[str, int] = defaultdict(int)
    materials: dict[Material, int] = defaultdict(int)
    for t in treatments:
        for method, grams in json.loads(t.methods_json).items():
            methods[method] += int(grams)
        for material, grams in json.loads(t.materials_json).items():
            materials[Material(material)] += int(grams)
    return domain.ReceiptFacts(
        receipt_id=receipt.receipt_id,
        status=AcceptanceStatus(receipt.status),
        received_grams=receipt.received_grams,
        accepted_grams=receipt.accepted_grams,
        refusal_reason=receipt.refusal_reason,
        treated_grams=sum(t.treated_grams for t in treatments),
        recycled_grams=sum(t.recycled_grams for t in treatments),
        material_grams=dict(materials),
        methods=dict(methods),
        treatment_ids=tuple(t.treatment_id for t in treatments),
    )


async def trips_of_batch(uow: UnitOfWork, batch_id: str) -> list[str]:
    """The trips a batch (or a direct-haul receipt) carries."""
    rows = await uow.session.exec(
        select(EprChainBatchTrip.trip_id).where(EprChainBatchTrip.batch_id == batch_id)
    )
    return list(rows.all())


# ---------------------------------------------------------------- settling


async def settle_loads(uow: UnitOfWork, load_ids: Iterable[str]) -> None:
    """Re-decide the pending claims recorded at these loads."""
    ids = sorted(set(load_ids))
    if not ids:
        return
    loads = (await uow.session.exec(
        select(EprChainLoad).where(col(EprChainLoad.load_id).in_(ids))
    )).all()
    known = {load.load_id for load in loads}
    for load_id in ids:
        if load_id not in known:
            await _settle_unknown_load(uow, load_id)
    await settle_trips(uow, {load.trip_id for load in loads})


async def _settle_unknown_load(uow: UnitOfWork, load_id: str) -> None:
    claims = (await uow.session.exec(
        select(EprClaim).where(EprClaim.load_id == load_id, EprClaim.status == PENDING)
    )).all()
    for claim in claims:
        await _apply(uow, claim, domain.decide_claim(_facts(claim, None, [], [], [])))


async def settle_trips(uow: UnitOfWork, trip_ids: Iterable[str]) -> None:
    """Re-decide the pending claims of every load these trips carried, then pay what fits."""
    decided = False
    for trip_id in sorted(set(trip_ids)):
        decided = await _settle_trip(uow, trip_id) or decided
    if decided:
        await credit_waiting(uow)


async def _settle_trip(uow: UnitOfWork, trip_id: str) -> bool:
    session = uow.session
    loads = {
        load.load_id: load for load in (await session.exec(
            select(EprChainLoad).where(EprChainLoad.trip_id == trip_id)
        )).all()
    }
    if not loads:
        return False
    claims = (await session.exec(
        select(EprClaim).where(col(EprClaim.load_id).in_(list(loads)),
                               EprClaim.status != REJECTED)
        .order_by(col(EprClaim.opened_at), col(EprClaim.claim_id))
    )).all()
    if not any(c.status == PENDING for c in claims):
        return False
    legs = await _batch_legs(uow, trip_id)
    # Earlier claims weigh on later ones: on the same load (the load-weight cap) and in
    # the same trip and category (the recycled mass they already took).
    on_load: dict[str, list[domain.PriorClaim]] = defaultdict(list)
    on_trip: dict[str, list[domain.PriorClaim]] = defaultdict(list)
    decided = False
    for claim in claims:
        load = loads[claim.load_id]
        material = Material(claim.material)
        if claim.status == PENDING:
            facts = _facts(claim, load, legs.get(load.category, []),
                           on_load[load.load_id], on_trip[load.category])
            decision = domain.decide_claim(facts)
            await _apply(uow, claim, decision)
            decided = decided or not isinstance(decision, domain.Pending)
        if claim.status in (CONFIRMED, CREDITED):
            taken = domain.PriorClaim(material, claim.confirmed_units * claim.unit_grams)
            on_trip[load.category].append(taken)
            on_load[load.load_id].append(taken)
        elif claim.status == PENDING:
            on_load[load.load_id].append(domain.PriorClaim(material, claim.grams))
    return decided


def _facts(
    claim: EprClaim,
    load: EprChainLoad | None,
    legs: Sequence[domain.BatchLeg],
    on_load: Sequence[domain.PriorClaim],
    on_trip: Sequence[domain.PriorClaim],
) -> domain.ClaimFacts:
    return domain.ClaimFacts(
        claim_id=claim.claim_id,
        generator_id=claim.generator_id,
        material=Material(claim.material),
        units=claim.units,
        unit_grams=claim.unit_grams,
        deposit_per_unit=claim.deposit_per_unit,
        load=None if load is None else domain.LoadFacts(
            load_id=load.load_id, trip_id=load.trip_id, generator_id=load.generator_id,
            category=load.category, measure=load.measure, grams=load.grams,
        ),
        batches=tuple(legs),
        earlier_on_load=tuple(on_load),
        confirmed_on_trip=tuple(on_trip),
    )


async def _apply(uow: UnitOfWork, claim: EprClaim, decision: domain.Decision) -> None:
    now = uow.store.clock.now()
    if isinstance(decision, domain.Pending):
        if claim.status_reason != decision.reason:
            claim.status_reason = decision.reason
            uow.session.add(claim)
        return
    if isinstance(decision, domain.Reject):
        await reject(uow, claim, decision.code, decision.reason, now)
        return
    claim.status = CONFIRMED
    claim.confirmed_units = decision.units
    claim.confirmed_amount = decision.amount
    claim.rejected_units = decision.rejected_units
    claim.status_reason = decision.reason
    claim.batch_ids = ",".join(decision.batch_ids)
    claim.receipt_id = decision.receipt_id
    claim.treatment_id = decision.treatment_id
    claim.decided_at = now
    uow.session.add(claim)
    real_batches = [b for b in decision.batch_ids if not b.startswith(DIRECT_HAUL)]
    await uow.record(claim_stream(claim.claim_id), [DepositClaimConfirmed(
        claim_id=claim.claim_id,
        batch_id=real_batches[0] if real_batches else None,
        receipt_id=decision.receipt_id,
        treatment_id=decision.treatment_id,
        amount=decision.amount,
        confirmed_at=now,
    )], actor=SYSTEM_ACTOR)


async def reject(
    uow: UnitOfWork, claim: EprClaim, code: ClaimRejection, reason: str, now: datetime
) -> None:
    """Reject a pending claim for good, with its reason, and record why."""
    claim.status = REJECTED
    claim.reason_code = code.value
    claim.status_reason = reason[:500]
    claim.rejected_units = claim.units
    claim.decided_at = now
    uow.session.add(claim)
    await uow.record(claim_stream(claim.claim_id), [DepositClaimRejected(
        claim_id=claim.claim_id, reason=reason[:500], reason_code=code, rejected_at=now,
    )], actor=SYSTEM_ACTOR)


async def escrow_balance(uow: UnitOfWork) -> int:
    """What the escrow holds (a debit-natured account, so its raw balance)."""
    return natural_balance(domain.ESCROW, await balance(uow.session, domain.ESCROW))


async def credit_waiting(uow: UnitOfWork) -> int:
    """Credit confirmed claims to households, first confirmed first, while escrow lasts.

    Returns how many claims were credited. The rest keep status ``confirmed`` and are
    retried on the next deposit (``record_deposit`` calls this again).
    """
    await uow.session.flush()
    queue = (await uow.session.exec(
        select(EprClaim).where(EprClaim.status == CONFIRMED)
        .order_by(col(EprClaim.decided_at), col(EprClaim.claim_id))
    )).all()
    if not queue:
        return 0
    payable = domain.plan_credits(await escrow_balance(uow),
                                  [(c.claim_id, c.confirmed_amount) for c in queue])
    by_id = {c.claim_id: c for c in queue}
    now = uow.store.clock.now()
    for claim_id in payable:
        claim = by_id[claim_id]
        entry = domain.refund_entry(refund_entry_id(claim_id), claim_id, claim.producer_id,
                                    claim.account_id, claim.confirmed_amount)
        # The escrow check above ran under the scheme lock; post_entry checks it again
        # under the account's row lock, as the ledger's own guarantee.
        await post_entry(uow, entry, actor=SYSTEM_ACTOR,
                         non_negative=frozenset({domain.ESCROW}))
        claim.status = CREDITED
        claim.credited_at = now
        claim.entry_id = entry.entry_id
        uow.session.add(claim)
        await uow.record(claim_stream(claim_id), [DepositClaimCredited(
            claim_id=claim_id, account_id=claim.account_id, amount=claim.confirmed_amount,
            method="account_credit", credited_at=now,
        )], actor=SYSTEM_ACTOR)
    for claim in queue[len(payable):]:
        waiting = "confirmed; waiting for deposits in the escrow to credit it"
        if claim.status_reason != waiting and not claim.rejected_units:
            claim.status_reason = waiting
            uow.session.add(claim)
    return len(payable)
