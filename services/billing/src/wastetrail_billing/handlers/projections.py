"""What billing learns from the chain: accounts, charges, refusals, treated mass."""

from __future__ import annotations

import json

from sqlmodel import select
from wastetrail_contracts import Envelope
from wastetrail_contracts.events.billing import AccountOpened
from wastetrail_contracts.events.collection import (
    GeneratorRegistered,
    GeneratorStatusChanged,
    LoadCollected,
    LoadRefused,
)
from wastetrail_contracts.events.treatment import TreatmentRecorded
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.tables import Account, Charge, Refusal, Treatment
from wastetrail_billing.domain.periods import local_date, period_of
from wastetrail_billing.handlers.common import BILLING_SYSTEM, account_of_generator


async def open_account(uow: UnitOfWork, event: GeneratorRegistered, envelope: Envelope) -> None:
    """Open the generator's account (AccountOpened once), or update its details."""
    account_id = account_of_generator(event.generator_id)
    account = await uow.session.get(Account, account_id)
    if account is not None:
        # Details change (moved commune, became a business); the account stays the same.
        account.code, account.name, account.commune = event.code, event.name, event.commune
        account.commune_class = event.commune_class.value
        account.customer_class = event.customer_class.value
        account.active = event.active
        uow.session.add(account)
        return
    uow.session.add(Account(
        account_id=account_id, generator_id=event.generator_id, code=event.code,
        name=event.name, commune=event.commune, commune_class=event.commune_class.value,
        customer_class=event.customer_class.value, active=event.active,
        opened_at=envelope.occurred_at,
    ))
    await uow.record(account_id, [AccountOpened(
        account_id=account_id, generator_id=event.generator_id, commune=event.commune,
        commune_class=event.commune_class, customer_class=event.customer_class,
    )], actor=BILLING_SYSTEM, expected_version=0)


async def change_account_status(uow: UnitOfWork, event: GeneratorStatusChanged) -> None:
    """An inactive account is no longer invoiced for months it has no loads in."""
    account = await uow.session.get(Account, account_of_generator(event.generator_id))
    if account is not None:
        account.active = event.active
        uow.session.add(account)


async def record_charge(uow: UnitOfWork, event: LoadCollected) -> None:
    """Attribute a collected load to its generator's account, in its local month."""
    if await uow.session.get(Charge, event.load_id) is not None:
        return  # the same load under a new event id (a device re-sync): charge it once
    day = local_date(event.collected_at)
    uow.session.add(Charge(
        load_id=event.load_id, account_id=account_of_generator(event.generator_id),
        trip_id=event.trip_id, commune=event.commune, category=event.category.value,
        measure=event.measure, grams=event.grams, litres=event.litres,
        bag_size=event.bag_size, collected_at=event.collected_at, collected_on=day,
        period=period_of(day),
    ))


async def record_refusal(uow: UnitOfWork, event: LoadRefused) -> None:
    """Track a refusal against the account (shown on its invoice and page)."""
    if await uow.session.get(Refusal, event.refusal_id) is not None:
        return
    uow.session.add(Refusal(
        refusal_id=event.refusal_id, account_id=account_of_generator(event.generator_id),
        reason=event.reason.value,
        category=event.category.value if event.category is not None else None,
        note=event.note, refused_at=event.refused_at,
        period=period_of(local_date(event.refused_at)),
    ))


async def record_treatment(uow: UnitOfWork, event: TreatmentRecorded) -> None:
    """Keep the treated mass per method of the month, for the full-cost report."""
    if await uow.session.get(Treatment, event.treatment_id) is not None:
        return
    methods = {method.value: grams for method, grams in event.methods.items()}
    uow.session.add(Treatment(
        treatment_id=event.treatment_id, plant_id=event.plant_id,
        period=period_of(local_date(event.treated_at)), treated_at=event.treated_at,
        methods_json=json.dumps(methods, sort_keys=True), treated_grams=sum(methods.values()),
    ))


async def accounts_by_id(uow: UnitOfWork, ids: list[str]) -> dict[str, Account]:
    """Accounts for the given ids (missing ones are simply absent)."""
    if not ids:
        return {}
    rows = await uow.session.exec(select(Account).where(Account.account_id.in_(ids)))  # type: ignore[attr-defined]
    return {a.account_id: a for a in rows}
