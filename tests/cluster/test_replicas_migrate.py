"""Replicas of a service start at once on one database: migrations run once, the others
wait for the lock and find the schema at head."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", ["collection", "billing"])
async def test_concurrent_replicas_migrate_one_database_once(database_url: str,
                                                             service: str) -> None:
    scripts = ROOT / f"services/{service}/src/wastetrail_{service}/migrations"
    # One process per replica, as deployed (Alembic's context is global to a process).
    code = ("import asyncio, sys; from pathlib import Path; "
            "from wastetrail_runtime.migrations import upgrade_to_head; "
            "asyncio.run(upgrade_to_head(Path(sys.argv[1]), sys.argv[2]))")
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, str(scripts),
                                                  database_url, stderr=asyncio.subprocess.PIPE)
             for _ in range(3)]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
        assert await conn.fetchval("SELECT to_regclass('rt_outbox') IS NOT NULL")
    finally:
        await conn.close()
