"""Throughput of offline batches: loads per second through POST /v1/loads/batch.

Not a test (the machine is shared); run by hand against the local stack:

    uv run python services/collection/tests/bench_batches.py [--batches 50] [--size 200]

It creates a database, starts the app in-process (real PostgreSQL, real Kafka relay),
seeds 1,000 households, and times batches of ``size`` scans sent one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).parent))

from collection_support import (
    NOW,
    device_token,
    published,
    running_service,
    scan,
    seed,
    start_trip,
)

ADMIN_URL = "postgresql://wastetrail@127.0.0.1:55432/postgres"


async def main(batches: int, size: int, bootstrap: str) -> None:
    name = f"bench_collection_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(ADMIN_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"postgresql+asyncpg://wastetrail@127.0.0.1:55432/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with running_service(url, bootstrap, "bench.", Path(tmp)) as service:
                client = service.client
                await seed(client, generators=1000, capacity=10_000_000)
                await start_trip(client, started_at=(NOW - timedelta(hours=1)).isoformat())
                bodies = [
                    {"scans": [scan(f"b{b}-{i}", tag=f"QR-{1 + (b * size + i) % 1000}",
                                    grams=1_000 + i,
                                    at=(NOW - timedelta(minutes=30)).isoformat())
                               for i in range(size)]}
                    for b in range(batches)
                ]
                started = time.perf_counter()
                accepted = 0
                for body in bodies:
                    r = await client.post("/v1/loads/batch", headers=device_token(), json=body)
                    assert r.status_code == 200, r.text
                    accepted += r.json()["accepted"]
                elapsed = time.perf_counter() - started
                print(f"{accepted} loads in {elapsed:.2f} s: {accepted / elapsed:,.0f} loads/s "
                      f"(batches of {size})")
                await published(service, within=120)
                total = time.perf_counter() - started
                print(f"published to Kafka after {total:.2f} s: "
                      f"{accepted / total:,.0f} loads/s end to end")
    finally:
        conn = await asyncpg.connect(ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    asyncio.run(main(args.batches, args.size, args.bootstrap))
