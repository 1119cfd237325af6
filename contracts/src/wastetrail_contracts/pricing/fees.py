"""Invoice arithmetic: one account, one month, one tariff → one invoice in whole đồng.

Rounding — the one rule. Every invoice line's exact amount (quantity × unit price,
and × days_in_force / days_in_month for fixed monthly amounts) is computed with
exact fractions and rounded half-up to whole đồng once, per line. The subtotal is
the sum of the rounded lines; VAT is that subtotal × the VAT rate, rounded half-up
(if a mid-month change alters the rate, once per rate, on the subtotal of the lines
priced at that rate); credits are applied to subtotal + VAT, never below zero, and
whatever is left of them is reported as carried over.

Proration — a month split by tariff versions. Each load is priced by the version in
force on its collection date. A version in force for d of the month's D days
charges d/D of each fixed monthly amount (flat amounts and tier base amounts), and
its tier thresholds become threshold_kg × 1000 × d / D grams, rounded half-up to
whole grams; only the loads collected while it was in force count against them.
Days before the tariff's first version are not charged at all.

Pure: no clock, no I/O; the same input gives an equal `Invoice`, and the order of
the quantities does not matter.
"""

import math
from calendar import monthrange
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from wastetrail_contracts.pricing.tariff import (
    Basis,
    Category,
    CommuneClass,
    Component,
    CustomerClass,
    FlatMonthlyRule,
    MonthlyMassTiersRule,
    PerBagRule,
    PerKgRule,
    PerLitreRule,
    Tariff,
    TariffRule,
    TariffVersion,
    charged_category,
)

_MODEL_CONFIG = ConfigDict(strict=True, frozen=True, extra="forbid")
_CATEGORY_ORDER = list(Category)


def round_half_up(value: Fraction) -> int:
    """Round a non-negative exact amount to whole đồng, halves up (151.5 → 152, 454.5 → 455).

    Half-up rather than Python's default half-even because that is how Vietnamese
    invoices and the provincial price decisions round, and a household checking
    its bill by hand expects .5 to go up.
    """
    if value < 0:
        raise ValueError(f"cannot round a negative amount: {value}")
    return math.floor(value + Fraction(1, 2))


def prorate_grams(kilograms: Decimal, days_in_force: int, days_in_month: int) -> int:
    """A tier threshold for a version in force d of D days: kg × 1000 × d / D, half-up grams."""
    return round_half_up(Fraction(kilograms) * 1000 * days_in_force / days_in_month)


class InvoiceError(ValueError):
    """Input that cannot be invoiced; `field` names the input, e.g. quantities[3].litres."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


class Account(BaseModel):
    """What the tariff needs to know about the account being billed."""

    model_config = _MODEL_CONFIG

    commune_class: Annotated[CommuneClass, Strict(False)]
    customer_class: Annotated[CustomerClass, Strict(False)]


class BillingMonth(BaseModel):
    """A calendar month (local calendar; the caller converts UTC event times to dates)."""

    model_config = _MODEL_CONFIG

    year: Annotated[int, Field(ge=1, le=9999)]
    month: Annotated[int, Field(ge=1, le=12)]

    @property
    def days(self) -> int:
        """Number of days in the month (28–31)."""
        return monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> date:
        """The 1st of the month."""
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        """The last day of the month."""
        return date(self.year, self.month, self.days)


class ChargedQuantity(BaseModel):
    """One collected load as billing sees it.

    `grams` is always the weight (0 when only the volume was recorded); `litres`
    is needed by `per_litre` rules, `bag_size` (and `bag_count`) by `per_bag` rules.
    """

    model_config = _MODEL_CONFIG

    collected_on: date
    category: Annotated[Category, Strict(False)]
    grams: Annotated[int, Field(ge=0)]
    litres: Annotated[int | None, Field(ge=0)] = None
    bag_size: Annotated[str | None, Field(min_length=1)] = None
    bag_count: Annotated[int, Field(ge=1)] = 1
    refused: bool = False


class Credit(BaseModel):
    """Money owed to the account that reduces the bill, e.g. an EPR deposit refund."""

    model_config = _MODEL_CONFIG

    reference: Annotated[str, Field(min_length=1)]
    amount: Annotated[int, Field(ge=0)]


class Unit(StrEnum):
    """What an invoice line's quantity counts."""

    MONTH = "month"
    KG = "kg"
    LITRE = "litre"
    BAG = "bag"


class InvoiceLine(BaseModel):
    """One priced line: category × component × tariff version (× tier band or bag size).

    amount = round_half_up(quantity × unit_price) — and for `unit == month` lines
    (flat amounts, tier bases) × days_in_force / days_in_month as well.
    """

    model_config = _MODEL_CONFIG

    category: Category
    component: Component
    basis: Basis
    covers: tuple[Category, ...]  # charged categories whose loads this line prices
    tariff_effective_from: date
    period_start: date
    period_end: date  # inclusive
    days_in_force: int
    days_in_month: int
    vat_rate_bp: int
    band: str | None  # tier band ("126–250 kg") or bag size ("20l")
    unit: Unit
    quantity: Decimal  # kg (exact, from grams), litres, bags, or 1 month
    unit_price: Decimal
    amount: int


class UnchargedReason(StrEnum):
    """Why collected waste was not charged."""

    FREE_SORTED = "free_sorted"  # Art. 79: separately sorted recyclable/hazardous
    NOT_PRICED = "not_priced"  # no quantity rule (e.g. a flat tariff covers the account)


class UnchargedQuantity(BaseModel):
    """Collected mass that appears on no priced line, and why."""

    model_config = _MODEL_CONFIG

    category: Category
    reason: UnchargedReason
    grams: int


class VatLine(BaseModel):
    """VAT on the lines priced at one rate."""

    model_config = _MODEL_CONFIG

    rate_bp: int
    taxable: int
    vat: int


class Invoice(BaseModel):
    """A month's bill for one account, all amounts in whole đồng.

    total = subtotal + vat; amount_due = total − credits_applied ≥ 0;
    credit_carried_over = credits_available − credits_applied.
    """

    model_config = _MODEL_CONFIG

    account: Account
    month: BillingMonth
    province: str
    tariff_label: str
    lines: tuple[InvoiceLine, ...]
    uncharged: tuple[UnchargedQuantity, ...]
    refused_grams: int  # refused loads, included in the `other` lines
    subtotal: int
    vat_lines: tuple[VatLine, ...]
    vat: int
    total: int
    credits: tuple[Credit, ...]
    credits_available: int
    credits_applied: int
    credit_carried_over: int
    amount_due: int


@dataclass(frozen=True)
class _Period:
    """A run of days of the month during which one tariff version is in force."""

    version: TariffVersion
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


# (id(tariff), year, month) → (that tariff, its periods). Tariffs and months are frozen
# models, so a month's periods never change for a given tariff object; a month-end run
# prices every account with the same few tariff objects, and walking the month day by
# day for each account was about a third of compute_invoice's time. The tariff is kept
# in the entry so its id can't be reused while cached; the cache is kept small.
_PERIODS_CACHE: dict[tuple[int, int, int], tuple[Tariff, tuple[_Period, ...]]] = {}
_PERIODS_CACHE_SIZE = 64


def _periods(tariff: Tariff, month: BillingMonth) -> tuple[_Period, ...]:
    key = (id(tariff), month.year, month.month)
    hit = _PERIODS_CACHE.get(key)
    if hit is not None and hit[0] is tariff:
        return hit[1]
    periods = tuple(_walk_periods(tariff, month))
    if len(_PERIODS_CACHE) >= _PERIODS_CACHE_SIZE:
        _PERIODS_CACHE.clear()
    _PERIODS_CACHE[key] = (tariff, periods)
    return periods


def _walk_periods(tariff: Tariff, month: BillingMonth) -> list[_Period]:
    periods: list[_Period] = []
    day = month.first_day
    last_day = month.last_day
    while day <= last_day:
        version = tariff.version_on(day)
        if version is not None:
            if periods and periods[-1].version == version and periods[-1].end == day - timedelta(1):
                periods[-1] = _Period(version, periods[-1].start, day)
            else:
                periods.append(_Period(version, day, day))
        day += timedelta(1)
    return periods


def price_boundaries(tariff: Tariff, month: BillingMonth) -> tuple[date, ...]:
    """The days of the month (and the day after it) on which the tariff's pricing may change.

    Between two consecutive boundaries every day falls in the same period of
    ``compute_invoice`` (or in none), so loads of one account, category and bag size
    collected in such a span can be summed before pricing — grams, litres and bags are
    only ever added up within a period — and priced as one quantity dated any day of the
    span, giving the same invoice as the loads one by one. Starts with the 1st and ends
    with the day after the last day.
    """
    days = {month.first_day, month.last_day + timedelta(1)}
    for period in _periods(tariff, month):
        days.add(period.start)
        days.add(period.end + timedelta(1))
    return tuple(sorted(days))


def _kg(grams: int) -> Decimal:
    return Decimal(grams).scaleb(-3)


def _kg_label(grams: int) -> str:
    return f"{_kg(grams).normalize():f}"


@dataclass
class _Tally:
    """What the loads of one period add up to, per rule position."""

    grams: defaultdict[int, int]
    litres: defaultdict[int, int]
    bags: defaultdict[tuple[int, str], int]

    @classmethod
    def empty(cls) -> "_Tally":
        return cls(defaultdict(int), defaultdict(int), defaultdict(int))


class _LineMaker:
    """Builds the lines of one period with the fields they all share."""

    def __init__(self, period: _Period, days_in_month: int) -> None:
        self.period = period
        self.days_in_month = days_in_month

    def line(
        self,
        rule: TariffRule,
        *,
        unit: Unit,
        quantity: Decimal,
        unit_price: Decimal,
        band: str | None = None,
    ) -> InvoiceLine:
        # quantity × unit price (× days / days in month) as one integer ratio, rounded
        # half up: round_half_up's rule without building Fractions (a month-end run
        # prices millions of lines).
        q_num, q_den = quantity.as_integer_ratio()
        p_num, p_den = unit_price.as_integer_ratio()
        num, den = q_num * p_num, q_den * p_den
        if unit is Unit.MONTH:
            num, den = num * self.period.days, den * self.days_in_month
        if num < 0:
            raise ValueError(f"cannot round a negative amount: {Fraction(num, den)}")
        return InvoiceLine(
            category=rule.category,
            component=rule.component,
            basis=rule.basis,
            covers=rule.priced_categories or (rule.category,),
            tariff_effective_from=self.period.version.effective_from,
            period_start=self.period.start,
            period_end=self.period.end,
            days_in_force=self.period.days,
            days_in_month=self.days_in_month,
            vat_rate_bp=self.period.version.vat_rate_bp,
            band=band,
            unit=unit,
            quantity=quantity,
            unit_price=unit_price,
            amount=(2 * num + den) // (2 * den),
        )


def _tier_lines(maker: _LineMaker, rule: MonthlyMassTiersRule, mass: int) -> list[InvoiceLine]:
    days, days_in_month = maker.period.days, maker.days_in_month
    base_limit = prorate_grams(rule.base_up_to_kg, days, days_in_month)
    lines = [
        maker.line(
            rule,
            unit=Unit.MONTH,
            quantity=Decimal(1),
            unit_price=rule.base_amount,
            band=f"≤{_kg_label(base_limit)} kg",
        )
    ]
    lower = base_limit
    for tier in rule.tiers:
        upper = None if tier.up_to_kg is None else prorate_grams(tier.up_to_kg, days, days_in_month)
        in_band = max(0, (mass if upper is None else min(mass, upper)) - lower)
        if in_band > 0:
            band = (
                f">{_kg_label(lower)} kg"
                if upper is None
                else f"{_kg_label(lower)}–{_kg_label(upper)} kg"
            )
            lines.append(
                maker.line(
                    rule,
                    unit=Unit.KG,
                    quantity=_kg(in_band),
                    unit_price=tier.price_per_kg,
                    band=band,
                )
            )
        if upper is not None:
            lower = upper
    return lines


# (id(version), commune class, customer class) → (that version, its rules for them): as
# _PERIODS_CACHE, the rules of a frozen version never change and a month-end run asks
# for the same few a million times.
_RULES_CACHE: dict[tuple[int, str, str], tuple[TariffVersion, tuple[TariffRule, ...]]] = {}


def _rules_for(version: TariffVersion, account: Account) -> tuple[TariffRule, ...]:
    key = (id(version), account.commune_class, account.customer_class)
    hit = _RULES_CACHE.get(key)
    if hit is not None and hit[0] is version:
        return hit[1]
    rules = version.rules_for(account.commune_class, account.customer_class)
    if len(_RULES_CACHE) >= _PERIODS_CACHE_SIZE:
        _RULES_CACHE.clear()
    _RULES_CACHE[key] = (version, rules)
    return rules


def _tally_loads(
    rules: tuple[TariffRule, ...],
    loads: list[tuple[int, ChargedQuantity]],
    customer_class: CustomerClass,
    uncharged: defaultdict[tuple[Category, UnchargedReason], int],
) -> _Tally:
    tally = _Tally.empty()
    for index, load in loads:
        category = charged_category(load.category, customer_class, refused=load.refused)
        if category is None:
            uncharged[(load.category, UnchargedReason.FREE_SORTED)] += load.grams
            continue
        matched = [j for j, rule in enumerate(rules) if category in rule.priced_categories]
        if not matched:
            uncharged[(category, UnchargedReason.NOT_PRICED)] += load.grams
            continue
        for j in matched:
            rule = rules[j]
            if isinstance(rule, PerKgRule | MonthlyMassTiersRule):
                tally.grams[j] += load.grams
            elif isinstance(rule, PerLitreRule):
                if load.litres is None:
                    raise InvoiceError(
                        f"quantities[{index}].litres",
                        f"the tariff prices {category}/{rule.component} per litre "
                        "but the load has no litres",
                    )
                tally.litres[j] += load.litres
            elif isinstance(rule, PerBagRule):
                if load.bag_size is None or load.bag_size not in rule.bag_prices:
                    known = ", ".join(sorted(rule.bag_prices))
                    raise InvoiceError(
                        f"quantities[{index}].bag_size",
                        f"the tariff prices {category}/{rule.component} per bag of size "
                        f"{known}; the load has bag size {load.bag_size!r}",
                    )
                tally.bags[(j, load.bag_size)] += load.bag_count
    return tally


def _period_lines(
    period: _Period,
    month: BillingMonth,
    account: Account,
    loads: list[tuple[int, ChargedQuantity]],
    uncharged: defaultdict[tuple[Category, UnchargedReason], int],
) -> list[InvoiceLine]:
    rules = _rules_for(period.version, account)
    if not rules:
        # Billing an account zero because its class is missing from the tariff
        # would hide a gap in the tariff; make the caller fix it instead.
        raise InvoiceError(
            "account",
            f"the tariff version effective {period.version.effective_from} has no rules for "
            f"{account.commune_class}/{account.customer_class}",
        )
    tally = _tally_loads(rules, loads, account.customer_class, uncharged)
    maker = _LineMaker(period, month.days)
    lines: list[InvoiceLine] = []
    for j, rule in enumerate(rules):  # rules_for orders them by category, component
        if isinstance(rule, FlatMonthlyRule):
            lines.append(
                maker.line(rule, unit=Unit.MONTH, quantity=Decimal(1), unit_price=rule.amount)
            )
        elif isinstance(rule, MonthlyMassTiersRule):
            lines.extend(_tier_lines(maker, rule, tally.grams[j]))
        elif isinstance(rule, PerKgRule):
            if j in tally.grams:
                lines.append(
                    maker.line(
                        rule,
                        unit=Unit.KG,
                        quantity=_kg(tally.grams[j]),
                        unit_price=rule.price_per_kg,
                    )
                )
        elif isinstance(rule, PerLitreRule):
            if j in tally.litres:
                lines.append(
                    maker.line(
                        rule,
                        unit=Unit.LITRE,
                        quantity=Decimal(tally.litres[j]),
                        unit_price=rule.price_per_litre,
                    )
                )
        else:
            for size in sorted(rule.bag_prices):
                if (j, size) in tally.bags:
                    lines.append(
                        maker.line(
                            rule,
                            unit=Unit.BAG,
                            quantity=Decimal(tally.bags[(j, size)]),
                            unit_price=rule.bag_prices[size],
                            band=size,
                        )
                    )
    return lines


def _vat_lines(lines: Sequence[InvoiceLine]) -> tuple[VatLine, ...]:
    taxable: defaultdict[int, int] = defaultdict(int)
    for line in lines:
        taxable[line.vat_rate_bp] += line.amount
    return tuple(
        VatLine(
            rate_bp=rate,
            taxable=taxable[rate],
            # round_half_up(taxable × rate / 10,000) in integers.
            vat=(2 * taxable[rate] * rate + 10_000) // 20_000,
        )
        for rate in sorted(taxable)
    )


def compute_invoice(
    account: Account,
    month: BillingMonth,
    tariff: Tariff,
    quantities: Sequence[ChargedQuantity],
    credits: Sequence[Credit] = (),
) -> Invoice:
    """Price one account's month of collected waste under a versioned tariff.

    Each load is charged as `charged_category` decides (free recyclable/hazardous
    for households, refused → `other`) and priced by the version in force on its
    date; fixed monthly amounts and tier thresholds are prorated by days in force,
    lines rounded half-up, VAT on the rounded subtotal, credits applied without
    making the total negative (see the module docstring for the exact rules).

    Raises `InvoiceError` naming the field when a load falls outside the month or
    on a day no tariff version covers, when a load lacks the litres or bag size its
    rule needs, or when the tariff has no rules for the account's classes.
    """
    periods = _periods(tariff, month)
    loads_by_period: list[list[tuple[int, ChargedQuantity]]] = [[] for _ in periods]
    first_day, last_day = month.first_day, month.last_day
    for index, load in enumerate(quantities):
        day = load.collected_on
        if not first_day <= day <= last_day:
            raise InvoiceError(
                f"quantities[{index}].collected_on",
                f"{day} is outside the billing month {month.year}-{month.month:02d}",
            )
        slot = next((k for k, p in enumerate(periods) if p.start <= day <= p.end), None)
        if slot is None:
            raise InvoiceError(
                f"quantities[{index}].collected_on", f"no tariff version is in force on {day}"
            )
        loads_by_period[slot].append((index, load))

    uncharged: defaultdict[tuple[Category, UnchargedReason], int] = defaultdict(int)
    lines: list[InvoiceLine] = []
    for period, loads in zip(periods, loads_by_period, strict=True):
        lines.extend(_period_lines(period, month, account, loads, uncharged))

    subtotal = sum(line.amount for line in lines)
    vat_lines = _vat_lines(lines)
    vat = sum(vat_line.vat for vat_line in vat_lines)
    total = subtotal + vat
    credits_available = sum(credit.amount for credit in credits)
    credits_applied = min(credits_available, total)
    return Invoice(
        account=account,
        month=month,
        province=tariff.province,
        tariff_label=tariff.label,
        lines=tuple(lines),
        uncharged=tuple(
            UnchargedQuantity(category=category, reason=reason, grams=grams)
            for (category, reason), grams in sorted(
                uncharged.items(),
                key=lambda item: (_CATEGORY_ORDER.index(item[0][0]), item[0][1]),
            )
        ),
        refused_grams=sum(load.grams for load in quantities if load.refused),
        subtotal=subtotal,
        vat_lines=vat_lines,
        vat=vat,
        total=total,
        credits=tuple(credits),
        credits_available=credits_available,
        credits_applied=credits_applied,
        credit_carried_over=credits_available - credits_applied,
        amount_due=total - credits_applied,
    )


def compute_supplement(full: Invoice, billed: Invoice,
                       credits: Sequence[Credit] = ()) -> Invoice:
    """The supplementary invoice for loads that arrived after a month was invoiced.

    ``full`` prices the month with every load now known, ``billed`` with the loads the
    earlier invoices covered (same account, month and tariff). The supplement bills the
    difference line by line — each line's quantity and amount, each VAT rate's taxable
    base and VAT — so the month's invoices together add up exactly to ``full``: tier
    thresholds, proration and per-line rounding come out as if every load had been on
    time. Lines that did not change are left out; the result may be a zero invoice
    (late loads a flat fee already covers), which still bills their mass.

    Raises `InvoiceError` when a line or VAT amount would go down: more loads never
    price a month lower under the tariff rules we support, so that would mean the
    inputs are not the same month.
    """
    if (full.account, full.month) != (billed.account, billed.month):
        raise InvoiceError("billed", "not the same account and month as the full invoice")
    earlier: dict[tuple[object, ...], InvoiceLine] = {_line_key(x): x for x in billed.lines}
    lines: list[InvoiceLine] = []
    for line in full.lines:
        before = earlier.pop(_line_key(line), None)
        quantity = line.quantity - (before.quantity if before else Decimal(0))
        amount = line.amount - (before.amount if before else 0)
        if quantity < 0 or amount < 0:
            raise InvoiceError("lines", f"{line.category}/{line.component} from "
                               f"{line.period_start} would be billed {-amount} đồng less")
        if quantity or amount:
            lines.append(line.model_copy(update={"quantity": quantity, "amount": amount}))
    if earlier:
        gone = next(iter(earlier.values()))
        raise InvoiceError("lines", f"{gone.category}/{gone.component} from "
                           f"{gone.period_start} was billed but is no longer priced")
    vat_before = {v.rate_bp: v for v in billed.vat_lines}
    vat_lines: list[VatLine] = []
    for v in full.vat_lines:
        was = vat_before.get(v.rate_bp, VatLine(rate_bp=v.rate_bp, taxable=0, vat=0))
        if v.vat < was.vat or v.taxable < was.taxable:
            raise InvoiceError("vat_lines", f"VAT at {v.rate_bp} bp would go down")
        if v.taxable != was.taxable:
            vat_lines.append(VatLine(rate_bp=v.rate_bp, taxable=v.taxable - was.taxable,
                                     vat=v.vat - was.vat))
    uncharged_before = {(u.category, u.reason): u.grams for u in billed.uncharged}
    uncharged = tuple(
        u.model_copy(update={"grams": u.grams - uncharged_before.get((u.category, u.reason), 0)})
        for u in full.uncharged
        if u.grams != uncharged_before.get((u.category, u.reason), 0))
    subtotal = sum(line.amount for line in lines)
    vat = sum(v.vat for v in vat_lines)
    total = subtotal + vat
    credits_available = sum(credit.amount for credit in credits)
    credits_applied = min(credits_available, total)
    return full.model_copy(update={
        "lines": tuple(lines), "uncharged": uncharged,
        "refused_grams": full.refused_grams - billed.refused_grams,
        "subtotal": subtotal, "vat_lines": tuple(vat_lines), "vat": vat, "total": total,
        "credits": tuple(credits), "credits_available": credits_available,
        "credits_applied": credits_applied,
        "credit_carried_over": credits_available - credits_applied,
        "amount_due": total - credits_applied,
    })


def _line_key(line: InvoiceLine) -> tuple[object, ...]:
    # Everything but what the loads change: quantity and amount.
    return (line.category, line.component, line.basis, line.covers,
            line.tariff_effective_from, line.period_start, line.period_end,
            line.days_in_force, line.days_in_month, line.vat_rate_bp, line.band, line.unit,
            line.unit_price)
