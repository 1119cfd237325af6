"""What billing learns from the chain: accounts, charges, refusals, treated mass."""

from __future__ import annotations

import json
from functools import partial

from sqlalchemy import Table, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable
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
from wastetrail_contracts.pricing.periods import local_date, period_of
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.tables import Account, Charge, Refusal, Treatment
from wastetrail_billing.handlers.common import BILLING_SYSTEM, account_of_generator

# Rows queued by ``defer_insert`` in this session: {table: {key: row}}, and whether the
# session's before-commit writer is attached.
_DEFERRED = "billing.deferred_inserts"
_DEFERRED_HOOKED = "billing.deferred_inserts_hooked"


def defer_insert(uow: UnitOfWork, table: Table, key: str, row: dict[str, object]) -> None:
    """Queue "insert this row unless its key exists", written in bulk before commit.

    Why: a consumer batch applies hundreds of LoadCollected in one transaction, one
    handler call each. A read-then-add per event costs two database round trips (the
    read, and the autoflush of the previous add); queuing the rows and writing them as
    one ``INSERT .. ON CONFLICT DO NOTHING`` per table at commit costs one per batch.
    The first row queued for a key wins, like the read-then-add it replaces. Rows are
    not visible to queries of this transaction until ``flush_deferred`` (or commit).
    """
    info = uow.session.info
    if not info.get(_DEFERRED_HOOKED):
        info[_DEFERRED_HOOKED] = True
        event.listen(uow.session.sync_session, "before_commit",
                     partial(_write_deferred_sync, uow.store.db.is_postgres))
    pending: dict[Table, dict[str, dict[str, object]]] = info.setdefault(_DEFERRED, {})
    pending.setdefault(table, {}).setdefault(key, row)


def _deferred_statements(
    info: dict[object, object], is_postgres: bool
) -> list[tuple[Executable, list[dict[str, object]]]]:
    pending = info.pop(_DEFERRED, None)
    if not isinstance(pending, dict):
        return []
    insert = pg_insert if is_postgres else sqlite_insert
    # One statement with a list of parameter sets: SQLAlchemy compiles it once (cached)
    # and sends it as batched multi-row INSERTs ("insertmanyvalues"); a .values(rows)
    # statement would be compiled afresh for every batch, which costs more than the I/O.
    return [(insert(table).on_conflict_do_nothing(), list(by_key.values()))
            for table, by_key in pending.items()]


def _write_deferred_sync(is_postgres: bool, session: Session) -> None:
    # Runs inside AsyncSession.commit's greenlet, so the sync execute is allowed here;
    # the runtime has already written this transaction's events, and this writes no new
    # ones, so nothing recorded is lost.
    for statement, rows in _deferred_statements(session.info, is_postgres):
        session.execute(statement, rows)


async def flush_deferred(uow: UnitOfWork) -> None:
    """Write the rows queued by ``defer_insert`` now (before a query that must see them)."""
    for statement, rows in _deferred_statements(uow.session.info, uow.store.db.is_postgres):
        await uow.session.execute(statement, rows)


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
    """Attribute a collected load to its generator's account, in its local month.

    The same load under a new event id (a device re-sync) is charged once: the row is
    queued with ``defer_insert``, which keeps the first row of a key and skips a load
    already charged.
    """
    day = local_date(event.collected_at)
    defer_insert(uow, Charge.__table__, event.load_id, {  # type: ignore[attr-defined]
        "load_id": event.load_id, "account_id": account_of_generator(event.generator_id),
        "trip_id": event.trip_id, "commune": event.commune, "category": event.category.value,
        "measure": event.measure, "grams": event.grams, "litres": event.litres,
        "bag_size": event.bag_size, "collected_at": event.collected_at, "collected_on": day,
        "period": period_of(day),
    })


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
