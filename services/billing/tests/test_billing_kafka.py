"""End to end through the real broker: collection's events arrive on Kafka and billing's
consumers project them; billing's own events (InvoiceIssued, ledger entries) reach its
topic through the outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from billing_support import FLAT_TARIFF, Events
from wastetrail_contracts import SYSTEM_ACTOR, decode, encode, parse_payload, uuid7
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.topics import event_topic, kafka_client_options
from wastetrail_runtime.clock import FixedClock

pytestmark = pytest.mark.integration


async def poll(check: Callable[[], Any], within: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_consumers_read_kafka_and_invoices_reach_kafka(
        billing_factory: Callable[..., Any], kafka_bootstrap: str, topic_prefix: str) -> None:
    prefix = f"{topic_prefix}k{uuid7()[-6:]}."
    clock = FixedClock(datetime(2026, 1, 20, tzinfo=UTC))
    async with billing_factory(clock=clock, topic_prefix=prefix, run_consumers=True) as billing:
        await billing.publish_tariff("flat", FLAT_TARIFF.read_text())
        topic = event_topic("collection", prefix)
        writer = ChainWriter("collection", topic, 0)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **kafka_client_options())
        await producer.start()
        try:
            for n, event in enumerate([
                Events.generator("HH-K"),
                Events.load("LK-1", "HH-K", 4_000, datetime(2026, 1, 21, tzinfo=UTC)),
            ], start=1):
                stream = "HH-K" if n == 1 else "LK-1"
                envelope = writer.append(event, stream_id=stream, stream_version=1,
                                         actor=SYSTEM_ACTOR, occurred_at=clock.now(),
                                         recorded_at=clock.now(), correlation_id=uuid7())
                await producer.send_and_wait(topic, encode(envelope), key=stream.encode(),
                                             partition=0)
        finally:
            await producer.stop()

        async def charged() -> bool:
            r = await billing.client.get("/v1/accounts/HH-K/charges?period=2026-01",
                                         headers=billing.auth())
            return r.status_code == 200 and len(r.json()["items"]) == 1

        await poll(charged)
        clock.set(datetime(2026, 2, 2, tzinfo=UTC))
        run = await billing.run_invoicing("2026-01")
        assert run["issued"] == ["INV-202601-HH-K"]

        consumer = AIOKafkaConsumer(event_topic("billing", prefix),
                                    bootstrap_servers=kafka_bootstrap, **kafka_client_options(),
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen: dict[str, dict[str, Any]] = {}
        try:
            async def published() -> bool:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        envelope = decode(record.value)
                        payload = parse_payload(envelope)
                        seen[f"{envelope.type}:{envelope.stream_id}"] = payload.model_dump(
                            mode="json")
                return ("billing.invoice_issued:INV-202601-HH-K" in seen
                        and "billing.ledger_entry_posted:inv-INV-202601-HH-K" in seen)

            await poll(published)
        finally:
            await consumer.stop()
    assert seen["billing.account_opened:HH-K"]["generator_id"] == "HH-K"
    assert seen["billing.invoice_issued:INV-202601-HH-K"]["total"] == 60_000
    entry = seen["billing.ledger_entry_posted:inv-INV-202601-HH-K"]
    assert sum(p["amount"] for p in entry["postings"]) == 0
