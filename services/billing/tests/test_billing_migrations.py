"""The Alembic history builds exactly the schema the code declares (billing and EPR)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from wastetrail_billing.adapters.tables import meta
from wastetrail_billing.app import SPEC
from wastetrail_runtime.migrations import alembic_config

pytestmark = pytest.mark.integration


async def tables_of(database_url: str, *, compare: bool) -> tuple[list[object], set[str]]:
    def diff(connection: Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        changes = compare_metadata(context, meta.metadata) if compare else []
        return changes, set(inspect(connection).get_table_names())

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def test_upgrade_to_head_matches_the_tables(database_url: str) -> None:
    cfg = alembic_config(SPEC.migrations, database_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")

    changes, tables = await tables_of(database_url, compare=True)

    assert changes == []
    assert {"rt_events", "rt_outbox", "rt_chain_heads", "rt_processed_events",
            "ledger_postings", "ledger_accounts", "accounts", "charges", "invoices",
            "payments", "refunds", "tariff_documents", "operating_costs"} <= tables


async def test_downgrade_to_base_removes_everything(database_url: str) -> None:
    cfg = alembic_config(SPEC.migrations, database_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    await asyncio.to_thread(command.downgrade, cfg, "base")
    _, tables = await tables_of(database_url, compare=False)
    assert tables <= {"alembic_version"}


async def test_0002_keeps_which_loads_each_invoice_billed(database_url: str) -> None:
    # Before 0002 a billed load carried its invoice id; a late one (same account and
    # month, after the invoice) did not. After it, exactly the billed loads are numbered
    # at or below their invoice's charges_through, and new loads above every number.
    cfg = alembic_config(SPEC.migrations, database_url)
    await asyncio.to_thread(command.upgrade, cfg, "0001")
    engine = create_async_engine(database_url)
    charge = ("INSERT INTO charges (load_id, account_id, trip_id, commune, category, measure,"
              " grams, collected_at, collected_on, period, invoice_id) VALUES (:id, :account,"
              " 'T', 'P', 'other', 'scale', 1000, :at, '2026-01-05', '2026-01', :invoice)")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO invoices (invoice_id, account_id, period, tariff_id,"
                " tariff_revision, tariff_sha256, lines_json, charged_grams, refused_count,"
                " subtotal, vat, credits, total, paid, issued_at) VALUES ('INV-1', 'A',"
                " '2026-01', 't', 1, 'x', '{}', 2000, 0, 0, 0, 0, 0, 0, now())"))
            # The late load was collected before the billed ones: numbering by collection
            # time alone would put it under the watermark.
            for load_id, account, day, invoice in [
                    ("A-LATE", "A", 1, None), ("A-1", "A", 2, "INV-1"),
                    ("A-2", "A", 3, "INV-1"), ("B-1", "B", 1, None)]:
                await conn.execute(text(charge), {
                    "id": load_id, "account": account, "invoice": invoice,
                    "at": datetime(2026, 1, day, tzinfo=UTC)})
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.begin() as conn:
            await conn.execute(text(charge.replace(", invoice_id", "").replace(
                ", :invoice", "")), {"id": "A-NEW", "account": "A",
                                     "at": datetime(2026, 1, 1, tzinfo=UTC)})
            billed = (await conn.execute(text(
                "SELECT c.load_id FROM charges c JOIN invoices i ON i.account_id ="
                " c.account_id AND i.period = c.period WHERE c.seq <= i.charges_through"
                " ORDER BY c.load_id"))).scalars().all()
    finally:
        await engine.dispose()
    assert billed == ["A-1", "A-2"]


async def test_0003_keeps_invoices_as_the_months_invoices_and_will_not_drop_supplements(
        database_url: str) -> None:
    cfg = alembic_config(SPEC.migrations, database_url)
    await asyncio.to_thread(command.upgrade, cfg, "0002")
    engine = create_async_engine(database_url)
    invoice = ("INSERT INTO invoices (invoice_id, account_id, period, tariff_id,"
               " tariff_revision, tariff_sha256, lines_json, charged_grams, refused_count,"
               " subtotal, vat, credits, total, paid, issued_at, charges_through{}) VALUES"
               " (:id, 'A', '2026-01', 't', 1, 'x', '{{}}', 0, 0, 0, 0, 0, 0, 0, now(), 0{})")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(invoice.format("", "")), {"id": "INV-1"})
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.begin() as conn:
            assert (await conn.execute(text(
                "SELECT supplement FROM invoices"))).scalars().all() == [0]
            await conn.execute(text(invoice.format(", supplement", ", 1")), {"id": "SUP-1"})
        with pytest.raises(Exception, match="supplementary invoices exist"):
            await asyncio.to_thread(command.downgrade, cfg, "0002")
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM invoices WHERE supplement > 0"))
        await asyncio.to_thread(command.downgrade, cfg, "0002")
    finally:
        await engine.dispose()


def test_billing_refuses_sqlite_with_a_clear_reason(tmp_path: Path) -> None:
    from wastetrail_billing.app import create_app
    from wastetrail_billing.settings import BillingSettings

    settings = BillingSettings(service="billing", database_url="", local_dir=tmp_path)
    with pytest.raises(ValueError, match="billing needs PostgreSQL"):
        create_app(settings)
