"""The Alembic history builds exactly the schema the code declares."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from wastetrail_runtime.migrations import alembic_config
from wastetrail_transfer.adapters.tables import meta
from wastetrail_transfer.app import SPEC

pytestmark = pytest.mark.integration


async def test_upgrade_to_head_matches_the_tables(database_url: str) -> None:
    cfg = alembic_config(SPEC.migrations, database_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")

    def diff(connection: Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, meta.metadata), set(inspect(connection).get_table_names())

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            changes, tables = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert changes == []
    # The runtime's event store and outbox live in the same database, under the same history.
    assert {"rt_events", "rt_outbox", "rt_chain_heads", "rt_processed_events", "trip",
            "batch", "trip_share", "alert"} <= tables


async def test_downgrade_to_base_removes_everything(database_url: str) -> None:
    cfg = alembic_config(SPEC.migrations, database_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    await asyncio.to_thread(command.downgrade, cfg, "base")
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert tables <= {"alembic_version"}
