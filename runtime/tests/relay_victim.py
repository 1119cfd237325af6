"""Run the outbox relay and SIGKILL this process right after Kafka acknowledged the first
batch, before the batch is marked published (used by test_faults)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import toy
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.store import EventStore


def _die(_count: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(database_url: str, bootstrap: str, prefix: str) -> None:
    store = EventStore(Database(database_url), toy.meta, "collection", topic_prefix=prefix)
    producer = make_producer(bootstrap)
    await producer.start()
    relay = OutboxRelay(store, producer, batch_size=5, after_publish=_die)
    await relay.publish_pending()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
