"""Operating costs (tính đúng, tính đủ) and the full-cost report of a period."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.enums import CostComponent, TreatmentMethod
from wastetrail_contracts.events.billing import OperatingCostRecorded
from wastetrail_contracts.pricing.tariff import Category, Component, CustomerClass, charged_category
from wastetrail_runtime.problems import conflict
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.tables import (
    Account,
    Charge,
    Invoice,
    OperatingCost,
    Treatment,
)
from wastetrail_billing.domain import invoicing as inv
from wastetrail_billing.domain.full_cost import (
    CostDriver,
    CostEntry,
    FullCostReport,
    PeriodActivity,
    compute_full_cost,
)
from wastetrail_billing.domain.full_cost import TreatmentMethod as CostMethod
from wastetrail_billing.handlers.common import build_event


async def record_cost(
    uow: UnitOfWork, *, cost_id: str, period: str, component: CostComponent, driver: str,
    method: TreatmentMethod | None, quantity: int, amount: int, description: str,
    allocate_to: Component | None, actor: Actor, now: datetime,
) -> tuple[OperatingCost, bool]:
    """Record one operating cost (OperatingCostRecorded); the same cost_id twice is a no-op.

    Overhead is not a fee component, so the report charges it to ``allocate_to``
    (collection unless told otherwise).
    """
    existing = await uow.session.get(OperatingCost, cost_id)
    event = build_event(OperatingCostRecorded, cost_id=cost_id, period=period,
                        component=component, driver=driver, method=method,
                        quantity=quantity, amount=amount, description=description)
    if existing is not None:
        if (existing.period, existing.component, existing.driver, existing.amount,
                existing.quantity) != (period, component.value, driver, amount, quantity):
            raise conflict("cost-id-reused",
                           f"cost {cost_id} was recorded with different values", "cost_id")
        return existing, False
    if component is CostComponent.OVERHEAD:
        allocated = (allocate_to or Component.COLLECTION).value
    else:
        allocated = component.value
    row = OperatingCost(cost_id=cost_id, period=period, component=component.value,
                        allocated_to=allocated, driver=driver,
                        method=method.value if method else None, quantity=quantity,
                        amount=amount, description=description, recorded_at=now)
    uow.session.add(row)
    await uow.record(f"cost-{cost_id}"[:80], [event], actor=actor, expected_version=0)
    return row, True


async def full_cost_report(session: AsyncSession, periods: list[str]) -> tuple[FullCostReport,
                                                                          PeriodActivity]:
    """The full cost of the periods against the mass handled and the money billed/collected.

    Revenue is counted without VAT (VAT is the state's money): billed = the invoices'
    subtotals; collected = the part of each invoice settled by payments (net of refunds)
    and credits, in proportion subtotal / (subtotal + VAT), rounded down.
    """
    costs = (await session.exec(
        select(OperatingCost).where(col(OperatingCost.period).in_(periods))
    )).all()
    entries = [CostEntry(
        component=Component(c.allocated_to), driver=CostDriver(c.driver), amount=c.amount,
        treatment_method=CostMethod(c.method) if c.method else None,
        description=c.description) for c in costs]
    collected = chargeable = 0
    rows = (await session.exec(
        select(Charge.category, Charge.grams, Account.customer_class)
        .join(Account, col(Account.account_id) == col(Charge.account_id), isouter=True)
        .where(col(Charge.period).in_(periods))
    )).all()
    for category, grams, customer_class in rows:
        collected += grams
        klass = CustomerClass(customer_class) if customer_class else CustomerClass.HOUSEHOLD
        if charged_category(Category(category), klass, refused=False) is not None:
            chargeable += grams
    by_method: defaultdict[CostMethod, int] = defaultdict(int)
    treated = 0
    for treatment in (await session.exec(
        select(Treatment).where(col(Treatment.period).in_(periods))
    )).all():
        treated += treatment.treated_grams
        for method, grams in json.loads(treatment.methods_json).items():
            by_method[CostMethod(method)] += int(grams)
    invoices = (await session.exec(
        select(Invoice).where(col(Invoice.period).in_(periods))
    )).all()
    billed = sum(i.subtotal for i in invoices)
    received = sum(inv.ex_vat(min(i.paid + i.credits, i.subtotal + i.vat), i.subtotal, i.vat)
                   for i in invoices)
    activity = PeriodActivity(
        months=len(periods), collected_grams=collected, treated_grams=treated,
        chargeable_grams=chargeable, treated_grams_by_method=dict(by_method),
        # Accounts billed per month on average, rounded down: dividing the cost by fewer
        # households errs toward a recovery price that does recover the cost.
        households_billed=len(invoices) // len(periods),
        revenue_billed=billed, revenue_collected=received,
    )
    return compute_full_cost(entries, activity), activity
