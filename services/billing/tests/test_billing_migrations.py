"""The Alembic history builds exactly the schema the code declares (billing and EPR)."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
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
