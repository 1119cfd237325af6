"""Pure rules of the EPR deposit-refund scheme: no I/O, no clock (dates are passed in).

The one question that matters — *is this deposit claim payable?* — is ``decide_claim``.
Everything else here feeds it or follows from it: which packaging version applies on a
day, how returned weight becomes units, which claims the escrow can pay now, the ledger
entries, recycling rates against the mandatory rates, and the 31 March / 20 April
deadlines.

Partial recycling (documented decision): a claim is confirmed by **mass balance**, not by
a proportional share. The recycled mass attributable to the claim's trip is

    Σ over the batches carrying that trip's category:
        recycled grams of the batch × (trip's grams in the batch / batch total grams)

where "recycled grams" are the recovered-material outputs named after the claim's
material when the plant reports them (``outputs: [{kind: "pet", ...}]``), otherwise the
grams treated by the ``recycling`` method. Claims of one trip draw on that mass in the
order they were opened; a claim gets the whole units that still fit, the rest of its
units are rejected. So a household is not penalised for other people's residue, but
the scheme never refunds more packaging mass than the plant says it recycled. A refused
batch recycles nothing (``material_refused``); a batch landfilled or incinerated recycles
nothing (``not_recycled``).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Literal

from wastetrail_contracts.base import MAX_DONG, MAX_GRAMS
from wastetrail_contracts.enums import AcceptanceStatus, ClaimRejection, Material

from wastetrail_billing.domain.ledger import JournalEntry, Posting

# ---------------------------------------------------------------- chart of accounts

ESCROW = "epr:escrow"
REFUND_SETTLEMENT = "cash:epr_refunds"


def producer_receivable(producer_id: str) -> str:
    """Deposits a producer has reported but not yet paid into the escrow (debit balance)."""
    return f"producer:{producer_id}:receivable"


def producer_deposits(producer_id: str) -> str:
    """Deposits carried by a producer's packaging on the market, not yet refunded.

    Credit-natured (its last segment is ``deposits``): the scheme's liability to whoever
    returns the packaging. Its natural balance is the producer's *unredeemed* deposits.
    """
    return f"producer:{producer_id}:deposits"


def household_credit(account_id: str) -> str:
    """The household's credit, consumed by its next invoice (billing's account)."""
    return f"household:{account_id}:credit"


def market_entry(entry_id: str, report_id: str, producer_id: str, amount: int) -> JournalEntry:
    """Units placed on the market: the producer owes the deposits they carry."""
    return JournalEntry(
        entry_id=entry_id,
        postings=(Posting(producer_receivable(producer_id), amount),
                  Posting(producer_deposits(producer_id), -amount)),
        memo=f"EPR deposits owed on units placed on the market (report {report_id})",
        reference=report_id,
    )


def deposit_entry(entry_id: str, payment_id: str, producer_id: str, amount: int) -> JournalEntry:
    """A producer paid deposits into the scheme's escrow account."""
    return JournalEntry(
        entry_id=entry_id,
        postings=(Posting(ESCROW, amount), Posting(producer_receivable(producer_id), -amount)),
        memo=f"EPR deposits paid into escrow (payment {payment_id})",
        reference=payment_id,
    )


def refund_entry(
    entry_id: str, claim_id: str, producer_id: str, account_id: str, amount: int
) -> JournalEntry:
    """A confirmed claim is refunded from the escrow to the household's credit.

    Two movements in one entry: the producer's deposit liability is redeemed in favour
    of the household (its credit, taken by its next invoice), and the escrow transfers
    the cash to the operator, who will not collect that part of the next invoice.
    """
    return JournalEntry(
        entry_id=entry_id,
        postings=(Posting(producer_deposits(producer_id), amount),
                  Posting(household_credit(account_id), -amount),
                  Posting(REFUND_SETTLEMENT, amount),
                  Posting(ESCROW, -amount)),
        memo=f"EPR deposit refund credited to the household (claim {claim_id})",
        reference=claim_id,
    )


# ---------------------------------------------------------------- packaging and returns


@dataclass(frozen=True)
class PackagingVersion:
    """One version of a packaging SKU: its material, unit weight and deposit from a date."""

    sku: str
    producer_id: str
    material: Material
    unit_grams: int
    deposit_per_unit: int
    effective_from: date


def packaging_on(versions: Iterable[PackagingVersion], day: date) -> PackagingVersion | None:
    """The version of a SKU in force on ``day`` (the latest that started on or before it)."""
    current: PackagingVersion | None = None
    for version in versions:
        if version.effective_from <= day and (
            current is None or version.effective_from > current.effective_from
        ):
            current = version
    return current


def overflowing_product(units: int, version: PackagingVersion, *,
                        max_grams: int = MAX_GRAMS) -> str | None:
    """Which product of ``units`` exceeds its bound — ``"grams"`` (units × unit weight: one
    return's at most MAX_GRAMS, a market report's MAX_TOTAL_GRAMS) or ``"amount"`` (units ×
    deposit, MAX_DONG) — or None when both fit. Each factor is bounded on its own; their
    product is not, and events and PostgreSQL's bigint would overflow."""
    if units * version.unit_grams > max_grams:
        return "grams"
    if units * version.deposit_per_unit > MAX_DONG:
        return "amount"
    return None


def units_in_weight(grams: int, unit_grams: int) -> int:
    """Whole units in a returned weight; a fraction of a unit is never refunded."""
    return grams // unit_grams


@dataclass(frozen=True)
class MarketShare:
    """A SKU of one material and the grams of it placed on the market in the province."""

    sku: str
    unit_grams: int
    market_grams: int


def allocate_weight(grams: int, shares: Sequence[MarketShare]) -> tuple[tuple[str, int], ...]:
    """Split a returned weight of one material among its SKUs by market share → (sku, units).

    Mixed packaging of one material weighed together cannot be told apart by producer, so
    each SKU is credited with its share of the grams placed on the market in the province
    (the usual EPR allocation key), converted to whole units; SKUs that get no whole unit
    are left out. Deterministic: SKUs are taken in name order.
    """
    total = sum(s.market_grams for s in shares)
    if total <= 0:
        return ()
    out: list[tuple[str, int]] = []
    for share in sorted(shares, key=lambda s: s.sku):
        units = units_in_weight(grams * share.market_grams // total, share.unit_grams)
        if units > 0:
            out.append((share.sku, units))
    return tuple(out)


def over_market(claimed_units: int, placed_units: int) -> bool:
    """Whether the units claimed for a SKU in a province exceed those placed on its market.

    That is a flag for the auditor, not a rejection: either the producer under-reported
    what it placed on the market, or packaging is crossing the provincial border.
    """
    return claimed_units > placed_units


# ---------------------------------------------------------------- the chain's facts


@dataclass(frozen=True)
class LoadFacts:
    """The load a claim was recorded at, as the collection service reported it."""

    load_id: str
    trip_id: str
    generator_id: str
    category: str
    measure: str
    grams: int


@dataclass(frozen=True)
class ReceiptFacts:
    """A plant's weighbridge receipt of a batch, with what its treatment records say."""

    receipt_id: str
    status: AcceptanceStatus
    received_grams: int
    accepted_grams: int
    refusal_reason: str = ""
    treated_grams: int = 0
    recycled_grams: int = 0
    material_grams: Mapping[Material, int] = field(default_factory=dict)
    methods: Mapping[str, int] = field(default_factory=dict)
    treatment_ids: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        """Refused outright, or every accepted gram has a treatment record."""
        return self.status is AcceptanceStatus.REFUSED or (
            self.treated_grams >= self.accepted_grams
        )


@dataclass(frozen=True)
class BatchLeg:
    """One batch that carries (part of) the claim's trip, in the load's category."""

    batch_id: str
    trip_grams: int  # grams of the claim's trip allocated to this batch
    total_grams: int  # the batch's total
    receipts: tuple[ReceiptFacts, ...] = ()


@dataclass(frozen=True)
class PriorClaim:
    """An earlier claim of the same trip (or load) and what it took."""

    material: Material
    grams: int


@dataclass(frozen=True)
class ClaimFacts:
    """Everything ``decide_claim`` needs to know about one pending claim."""

    claim_id: str
    generator_id: str
    material: Material
    units: int
    unit_grams: int
    deposit_per_unit: int
    load: LoadFacts | None
    batches: tuple[BatchLeg, ...] = ()
    earlier_on_load: tuple[PriorClaim, ...] = ()  # claimed (not rejected) before, same load
    confirmed_on_trip: tuple[PriorClaim, ...] = ()  # confirmed grams of earlier trip claims

    @property
    def grams(self) -> int:
        """The packaging mass the claim stands for."""
        return self.units * self.unit_grams


@dataclass(frozen=True)
class Pending:
    """Not decidable yet; ``reason`` says what the claim is waiting for."""

    reason: str
    kind: Literal["pending"] = "pending"


@dataclass(frozen=True)
class Confirm:
    """Payable: ``units`` (possibly fewer than claimed) were recycled; the rest is rejected."""

    units: int
    amount: int
    rejected_units: int
    reason: str
    batch_ids: tuple[str, ...]
    receipt_id: str
    treatment_id: str
    kind: Literal["confirm"] = "confirm"


@dataclass(frozen=True)
class Reject:
    """Never payable, with a reason a household can read."""

    code: ClaimRejection
    reason: str
    kind: Literal["reject"] = "reject"


Decision = Pending | Confirm | Reject


def _material_specific(batches: Sequence[BatchLeg]) -> bool:
    return any(r.material_grams for b in batches for r in b.receipts)


def recycled_for_trip(batches: Sequence[BatchLeg], material: Material) -> Fraction:
    """The recycled mass attributable to the trip: each batch's recycled grams × trip share.

    When any receipt names recovered materials, only outputs of ``material`` count.
    """
    specific = _material_specific(batches)
    total = Fraction(0)
    for leg in batches:
        if leg.total_grams <= 0:
            continue
        recycled = sum(
            (r.material_grams.get(material, 0) if specific else r.recycled_grams)
            for r in leg.receipts
        )
        total += Fraction(recycled * leg.trip_grams, leg.total_grams)
    return total


def _treatment_summary(batches: Sequence[BatchLeg]) -> str:
    methods: dict[str, int] = {}
    for leg in batches:
        for receipt in leg.receipts:
            for method, grams in receipt.methods.items():
                methods[method] = methods.get(method, 0) + grams
    treated = sum(methods.values())
    if treated == 0:
        return "no treatment recorded"
    return ", ".join(
        f"{method} {grams * 100 // treated} %" for method, grams in sorted(methods.items())
    )


def decide_claim(facts: ClaimFacts) -> Decision:
    """Is this deposit claim payable? Pending, confirmed (how many units) or rejected.

    In order: the load must be known and be the claimant's; packaging claimed at a load
    weighed on a scale cannot outweigh the load; every batch carrying the load's trip
    (in the load's category) must be received and, unless refused, fully treated; then
    the recycled mass attributable to the trip, less what earlier claims of the trip
    took, pays the claim's whole units (mass balance, see the module docstring).
    """
    load = facts.load
    if load is None:
        return Pending("awaiting the load from the collection service")
    if load.generator_id != facts.generator_id:
        return Reject(ClaimRejection.OTHER,
                      f"load {load.load_id} was collected from another generator")
    if load.measure == "scale":
        on_load = sum(p.grams for p in facts.earlier_on_load) + facts.grams
        if on_load > load.grams:
            return Reject(ClaimRejection.OTHER,
                          f"packaging claimed at load {load.load_id} weighs {on_load} g, "
                          f"more than the {load.grams} g the load weighed")
    if not facts.batches:
        return Pending(f"awaiting consolidation of trip {load.trip_id} into a batch")
    for leg in facts.batches:
        if not leg.receipts:
            return Pending(f"awaiting the plant's receipt of batch {leg.batch_id}")
        for receipt in leg.receipts:
            if not receipt.resolved:
                return Pending(
                    f"awaiting treatment of receipt {receipt.receipt_id} "
                    f"({receipt.treated_grams} of {receipt.accepted_grams} g treated)"
                )
    receipts = [r for leg in facts.batches for r in leg.receipts]
    if all(r.status is AcceptanceStatus.REFUSED for r in receipts):
        reasons = "; ".join(sorted({r.refusal_reason for r in receipts if r.refusal_reason}))
        batches = ", ".join(leg.batch_id for leg in facts.batches)
        return Reject(ClaimRejection.MATERIAL_REFUSED,
                      f"batch {batches} was refused by the plant" + (f": {reasons}"
                                                                       if reasons else ""))
    capacity = math.floor(recycled_for_trip(facts.batches, facts.material))
    specific = _material_specific(facts.batches)
    used = sum(p.grams for p in facts.confirmed_on_trip
               if not specific or p.material is facts.material)
    remaining = max(0, capacity - used)
    units = min(facts.units, remaining // facts.unit_grams)
    if units == 0:
        if capacity == 0:
            return Reject(ClaimRejection.NOT_RECYCLED,
                          f"nothing of this trip's {facts.material.value} was recycled "
                          f"({_treatment_summary(facts.batches)})")
        return Reject(ClaimRejection.NOT_RECYCLED,
                      f"the {capacity} g recycled from this trip are taken by earlier claims")
    rejected = facts.units - units
    reason = "" if rejected == 0 else (
        f"only {remaining} g of recycled mass was left for {facts.grams} g of packaging; "
        f"{rejected} units were not recycled"
    )
    treatment_ids = sorted(t for r in receipts for t in r.treatment_ids)
    treated_receipts = sorted(r.receipt_id for r in receipts if r.treatment_ids)
    return Confirm(
        units=units,
        amount=units * facts.deposit_per_unit,
        rejected_units=rejected,
        reason=reason,
        batch_ids=tuple(leg.batch_id for leg in facts.batches),
        receipt_id=treated_receipts[0],
        treatment_id=treatment_ids[0],
    )


# ---------------------------------------------------------------- escrow


def plan_credits(escrow: int, queue: Sequence[tuple[str, int]]) -> tuple[str, ...]:
    """Which confirmed claims the escrow can credit now, strictly first confirmed first.

    The escrow never goes negative: the first claim it cannot cover, and every claim
    after it, waits for the next deposit (no later claim jumps the queue).
    """
    paid: list[str] = []
    for claim_id, amount in queue:
        if amount > escrow:
            break
        escrow -= amount
        paid.append(claim_id)
    return tuple(paid)


# ---------------------------------------------------------------- rates and deadlines


@dataclass(frozen=True)
class MandatoryRate:
    """A material's mandatory recycling rate (percent), and whether it is an assumption."""

    material: Material
    percent: int
    assumed: bool
    source: str


def parse_rates(text: str) -> dict[Material, MandatoryRate]:
    """The mandatory rates from the TOML data file (``[rates.<material>]`` tables)."""
    document = tomllib.loads(text)
    out: dict[Material, MandatoryRate] = {}
    for name, row in document["rates"].items():
        material = Material(name)
        percent = row["percent"]
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"rates.{name}.percent: must be an integer 0..100")
        out[material] = MandatoryRate(material, percent, bool(row.get("assumed", False)),
                                      str(row.get("source", "")))
    return out


@dataclass(frozen=True)
class RateLine:
    """One material's recycling against its mandatory rate (rates in basis points)."""

    material: Material
    placed_grams: int
    recycled_grams: int
    rate_bp: int
    mandatory_bp: int
    assumed: bool
    met: bool
    shortfall_grams: int


def recycling_rates(
    placed: Mapping[Material, int],
    recycled: Mapping[Material, int],
    mandatory: Mapping[Material, MandatoryRate],
) -> tuple[RateLine, ...]:
    """Per material: recycled / placed on the market against the mandatory rate.

    The shortfall is what must still be recycled (or paid to the Vietnam Environment
    Protection Fund instead): ⌈placed × rate⌉ − recycled, never negative.
    """
    lines: list[RateLine] = []
    for material in sorted(set(placed) | set(recycled), key=lambda m: m.value):
        put, done = placed.get(material, 0), recycled.get(material, 0)
        rule = mandatory.get(material)
        percent = rule.percent if rule else 0
        required = -(-put * percent // 100)
        lines.append(RateLine(
            material=material,
            placed_grams=put,
            recycled_grams=done,
            rate_bp=done * 10_000 // put if put else 0,
            mandatory_bp=percent * 100,
            assumed=rule.assumed if rule else True,
            met=done >= required,
            shortfall_grams=max(0, required - done),
        ))
    return tuple(lines)


DeadlineStatus = Literal["met", "late", "open", "overdue"]


@dataclass(frozen=True)
class Deadline:
    """One statutory deadline of a reporting year and where the producer stands."""

    name: Literal["report", "payment"]
    due: date
    status: DeadlineStatus
    detail: str


def report_deadline(year: int) -> date:
    """The year's units-on-the-market report is due before 31 March of the next year."""
    return date(year + 1, 3, 31)


def payment_deadline(year: int) -> date:
    """The year's deposits/contributions are due before 20 April of the next year."""
    return date(year + 1, 4, 20)


def deadlines(
    year: int,
    today: date,
    reports_filed_on: Sequence[date],
    owed_through_year: int,
    payments: Sequence[tuple[date, int]],
) -> tuple[Deadline, Deadline]:
    """The 31 March report and 20 April payment deadlines of ``year``, flagged.

    ``reports_filed_on``: local dates on which reports for periods of ``year`` were filed.
    ``owed_through_year``: deposits owed on reports for every period up to December of
    ``year``; ``payments``: (local date, amount) of every deposit payment. Payments settle
    the oldest debt first, so the year is paid once payments made by the deadline cover
    everything owed through it.
    """
    due = report_deadline(year)
    if reports_filed_on:
        first = min(reports_filed_on)
        report = (Deadline("report", due, "met", f"filed on {first.isoformat()}")
                  if first <= due else
                  Deadline("report", due, "late", f"first filed on {first.isoformat()}"))
    elif today <= due:
        report = Deadline("report", due, "open", f"due in {(due - today).days} days")
    else:
        report = Deadline("report", due, "overdue",
                          f"no report for {year}, {(today - due).days} days late")
    pay_due = payment_deadline(year)
    paid_by_due = sum(amount for day, amount in payments if day <= pay_due)
    paid_now = sum(amount for day, amount in payments if day <= today)
    outstanding = max(0, owed_through_year - paid_by_due)
    if outstanding == 0:
        payment = Deadline("payment", pay_due, "met", "deposits owed through the year are paid")
    elif today <= pay_due:
        payment = Deadline("payment", pay_due, "open",
                           f"{outstanding} đ outstanding, due in {(pay_due - today).days} days")
    elif paid_now >= owed_through_year:
        payment = Deadline("payment", pay_due, "late", "paid after the deadline")
    else:
        payment = Deadline("payment", pay_due, "overdue",
                           f"{owed_through_year - paid_now} đ outstanding, "
                           f"{(today - pay_due).days} days late")
    return report, payment
