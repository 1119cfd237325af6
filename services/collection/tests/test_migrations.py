"""The migrations build exactly the tables the code declares."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from wastetrail_collection.adapters.tables import meta
from wastetrail_collection.app import SPEC
from wastetrail_runtime.migrations import upgrade_to_head

pytestmark = pytest.mark.integration


async def test_empty_database_to_head_matches_the_tables(database_url: str) -> None:
    await upgrade_to_head(SPEC.migrations, database_url)
    engine = create_async_engine(database_url)

    def diff(conn: Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, meta.metadata), set(inspect(conn).get_table_names())

    try:
        async with engine.connect() as conn:
            changes, tables = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert changes == []
    assert {"generators", "tags", "trips", "loads", "refusals", "vehicles", "devices",
            "collectors", "collector_communes", "collection_points", "rt_events", "rt_outbox",
            "rt_chain_heads", "rt_processed_events", "alembic_version"} == tables
    # Upgrading again is a no-op (the service migrates on every start).
    await upgrade_to_head(SPEC.migrations, database_url)
