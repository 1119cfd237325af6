"""The Alembic history builds exactly the tables the code uses, on real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import wastetrail_treatment
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from wastetrail_runtime.migrations import upgrade_to_head
from wastetrail_treatment.adapters.tables import meta

MIGRATIONS = Path(wastetrail_treatment.__file__).parent / "migrations"


@pytest.mark.integration
async def test_upgrade_empty_database_to_head_matches_the_tables(database_url: str) -> None:
    await upgrade_to_head(MIGRATIONS, database_url)

    def check(conn: Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, meta.metadata), set(inspect(conn).get_table_names())

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff, tables = await conn.run_sync(check)
    finally:
        await engine.dispose()
    assert diff == []
    assert {"plants", "receipts", "redirects", "treatment_records", "loads", "trips",
            "batches", "allocations", "vehicles", "rt_events", "rt_outbox",
            "rt_processed_events", "rt_chain_heads"} <= tables
