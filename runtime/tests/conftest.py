"""Fixtures for the runtime's own tests: the toy service's store on real PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import toy
from wastetrail_runtime.db import Database
from wastetrail_runtime.store import EventStore


@pytest.fixture
async def store(database_url: str, topic_prefix: str) -> AsyncIterator[EventStore]:
    db = Database(database_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(toy.meta.metadata.create_all)
    yield EventStore(db, toy.meta, "collection", topic_prefix=topic_prefix)
    await db.dispose()
