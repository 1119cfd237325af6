"""Read models of the EPR scheme: producer balances, escrow, claims, compliance."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from functools import cache
from importlib import resources

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts.enums import Material
from wastetrail_contracts.pricing.periods import local_date

from wastetrail_billing.adapters.ledger import balance
from wastetrail_billing.domain.ledger import natural_balance
from wastetrail_billing.epr import domain
from wastetrail_billing.epr.settlement import CONFIRMED, CREDITED
from wastetrail_billing.epr.tables import (
    EprClaim,
    EprDepositPayment,
    EprMarketReport,
    EprProducer,
)


@cache
def mandatory_rates() -> dict[Material, domain.MandatoryRate]:
    """The mandatory recycling rates from ``epr/rates.toml`` (data, not code)."""
    text = resources.files("wastetrail_billing.epr").joinpath("rates.toml").read_text("utf-8")
    return domain.parse_rates(text)


async def producer_balances(session: AsyncSession) -> dict[str, dict[str, int]]:
    """Per producer, in đồng: ``owed`` (deposits reported), ``paid`` (into the escrow),
    ``refunded`` (credited to households) and ``unredeemed`` (owed − refunded: deposits
    still carried by packaging on the market). Every producer appears, even with zeros."""
    figures: dict[str, dict[str, int]] = {
        p: {"owed": 0, "paid": 0, "refunded": 0, "unredeemed": 0}
        for p in (await session.exec(select(EprProducer.producer_id))).all()
    }
    for producer_id, owed in (await session.exec(
        select(EprMarketReport.producer_id, func.sum(EprMarketReport.deposit_owed))
        .group_by(col(EprMarketReport.producer_id))
    )).all():
        figures[producer_id]["owed"] = int(owed or 0)
    for producer_id, paid in (await session.exec(
        select(EprDepositPayment.producer_id, func.sum(EprDepositPayment.amount))
        .group_by(col(EprDepositPayment.producer_id))
    )).all():
        figures[producer_id]["paid"] = int(paid or 0)
    for producer_id, refunded in (await session.exec(
        select(EprClaim.producer_id, func.sum(EprClaim.confirmed_amount))
        .where(EprClaim.status == CREDITED).group_by(col(EprClaim.producer_id))
    )).all():
        figures[producer_id]["refunded"] = int(refunded or 0)
    for row in figures.values():
        row["unredeemed"] = row["owed"] - row["refunded"]
    return dict(sorted(figures.items()))


async def scheme_balances(session: AsyncSession) -> dict[str, object]:
    """The escrow and every producer's balances, with the ledger's own view beside them.

    ``ledger`` repeats each figure from the ledger accounts (receivable = owed − paid,
    deposits = unredeemed), so a reader sees at once that both agree.
    """
    producers = await producer_balances(session)
    ledger: dict[str, dict[str, int]] = {}
    for producer_id in producers:
        receivable = domain.producer_receivable(producer_id)
        deposits = domain.producer_deposits(producer_id)
        ledger[producer_id] = {
            "receivable": natural_balance(receivable, await balance(session, receivable)),
            "unredeemed": natural_balance(deposits, await balance(session, deposits)),
        }
    confirmed_waiting = (await session.exec(
        select(func.coalesce(func.sum(EprClaim.confirmed_amount), 0))
        .where(EprClaim.status == CONFIRMED)
    )).one()
    return {
        "escrow": natural_balance(domain.ESCROW, await balance(session, domain.ESCROW)),
        "refunds_transferred": natural_balance(
            domain.REFUND_SETTLEMENT, await balance(session, domain.REFUND_SETTLEMENT)),
        "confirmed_awaiting_escrow": int(confirmed_waiting),
        "producers": {
            p: {**row, "outstanding": row["owed"] - row["paid"], "ledger": ledger[p]}
            for p, row in producers.items()
        },
    }


async def compliance(session: AsyncSession, producer_id: str, year: int,
                     today: date) -> dict[str, object]:
    """A producer's year: recycling rate per material against the mandatory rate, and the
    31 March report / 20 April payment deadlines, flagged."""
    first, last = f"{year:04d}-01", f"{year:04d}-12"
    reports = (await session.exec(
        select(EprMarketReport).where(EprMarketReport.producer_id == producer_id,
                                      col(EprMarketReport.period) <= last)
    )).all()
    placed: dict[Material, int] = defaultdict(int)
    filed_on: list[date] = []
    for r in reports:
        if r.period >= first:
            placed[Material(r.material)] += r.units * r.unit_grams
            filed_on.append(r.reported_on)
    recycled: dict[Material, int] = defaultdict(int)
    for claim in (await session.exec(
        select(EprClaim).where(EprClaim.producer_id == producer_id,
                               col(EprClaim.status).in_([CONFIRMED, CREDITED]))
    )).all():
        if claim.decided_at is not None and local_date(claim.decided_at).year == year:
            recycled[Material(claim.material)] += claim.confirmed_units * claim.unit_grams
    payments = [(p.paid_on, p.amount) for p in (await session.exec(
        select(EprDepositPayment).where(EprDepositPayment.producer_id == producer_id)
    )).all()]
    lines = domain.recycling_rates(placed, recycled, mandatory_rates())
    report, payment = domain.deadlines(year, today, filed_on,
                                       sum(r.deposit_owed for r in reports), payments)
    return {
        "producer_id": producer_id,
        "year": year,
        "materials": [
            {"material": ln.material.value, "placed_grams": ln.placed_grams,
             "recycled_grams": ln.recycled_grams, "rate_bp": ln.rate_bp,
             "mandatory_bp": ln.mandatory_bp, "mandatory_rate_assumed": ln.assumed,
             "met": ln.met, "shortfall_grams": ln.shortfall_grams}
            for ln in lines
        ],
        "deadlines": [
            {"name": d.name, "due": d.due.isoformat(), "status": d.status, "detail": d.detail}
            for d in (report, payment)
        ],
        "flags": [d.name + "_" + d.status for d in (report, payment)
                  if d.status in ("late", "overdue")]
        + [f"below_mandatory_rate:{ln.material.value}" for ln in lines if not ln.met],
    }


def claim_view(claim: EprClaim) -> dict[str, object]:
    """A claim as the API shows it."""
    return {
        "claim_id": claim.claim_id,
        "status": claim.status,
        "reason": claim.status_reason,
        "reason_code": claim.reason_code,
        "account_id": claim.account_id,
        "generator_id": claim.generator_id,
        "load_id": claim.load_id,
        "producer_id": claim.producer_id,
        "sku": claim.sku,
        "material": claim.material,
        "province": claim.province,
        "units": claim.units,
        "grams": claim.grams,
        "deposit_per_unit": claim.deposit_per_unit,
        "amount": claim.amount,
        "confirmed_units": claim.confirmed_units,
        "confirmed_amount": claim.confirmed_amount,
        "rejected_units": claim.rejected_units,
        "flagged_over_market": claim.flagged_over_market,
        "batch_ids": [b for b in claim.batch_ids.split(",") if b],
        "receipt_id": claim.receipt_id,
        "treatment_id": claim.treatment_id,
        "entry_id": claim.entry_id,
        "opened_at": claim.opened_at.isoformat(),
        "decided_at": claim.decided_at.isoformat() if claim.decided_at else None,
        "credited_at": claim.credited_at.isoformat() if claim.credited_at else None,
    }
