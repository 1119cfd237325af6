"""Billing verifies a record before it applies it (wastetrail_runtime.integrity): a load
written straight into the collection topic by someone who is not collection's relay —
with a hash that does not match, under another service's name, or of a type collection
does not publish — is dead-lettered with reason ``integrity`` and charges nothing; the
same holds on the consumer's retry topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from billing_support import FLAT_TARIFF, Events
from test_billing_kafka import poll
from wastetrail_contracts import SYSTEM_ACTOR, encode, uuid7
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.codec import canonical_bytes, envelope_hash
from wastetrail_contracts.topics import (
    dead_letter_topic,
    event_topic,
    kafka_client_options,
    retry_topic,
)
from wastetrail_runtime.clock import FixedClock

pytestmark = pytest.mark.integration
AT = datetime(2026, 1, 21, tzinfo=UTC)


def tampered(value: bytes, **changes: Any) -> bytes:
    """An envelope with some fields changed; ``payload`` entries merge into the payload."""
    fields = json.loads(value)
    fields["payload"] = {**fields["payload"], **changes.pop("payload", {})}
    fields.update(changes)
    return canonical_bytes(fields)


async def test_forged_loads_are_dead_lettered_for_integrity_and_charge_nothing(
        billing_factory: Callable[..., Any], kafka_bootstrap: str, topic_prefix: str) -> None:
    prefix = f"{topic_prefix}i{uuid7()[-6:]}."
    clock = FixedClock(datetime(2026, 1, 20, tzinfo=UTC))
    topic = event_topic("collection", prefix)
    writer = ChainWriter("collection", topic, 0)
    sealed = []
    for stream, event in [("HH-I", Events.generator("HH-I")),
                          ("LI-1", Events.load("LI-1", "HH-I", 4_000, AT)),
                          ("LI-2", Events.load("LI-2", "HH-I", 5_000, AT)),
                          ("LI-3", Events.load("LI-3", "HH-I", 6_000, AT)),
                          ("LI-4", Events.load("LI-4", "HH-I", 7_000, AT))]:
        sealed.append((stream, encode(writer.append(
            event, stream_id=stream, stream_version=1, actor=SYSTEM_ACTOR,
            occurred_at=AT, recorded_at=AT, correlation_id=uuid7()))))
    # LI-2: 5 kg became 90 kg after sealing (the hash no longer matches). LI-3: re-hashed
    # but under transfer's name. LI-4: a perfectly hashed load on the retry topic, forged
    # the same way as LI-2.
    bad_hash = tampered(sealed[2][1], payload={"grams": 90_000})
    original = json.loads(sealed[3][1])
    foreign = json.loads(tampered(sealed[3][1], service="transfer", chain_id=str(
        original["chain_id"]).replace("collection:", "transfer:", 1)))
    foreign["hash"] = envelope_hash(foreign)
    on_retry = tampered(sealed[4][1], payload={"grams": 80_000})
    async with billing_factory(clock=clock, topic_prefix=prefix, run_consumers=True) as billing:
        await billing.publish_tariff("flat", FLAT_TARIFF.read_text())
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **kafka_client_options())
        await producer.start()
        try:
            for stream, value in [sealed[0], ("LI-2", bad_hash),
                                  ("LI-3", canonical_bytes(foreign)), sealed[1]]:
                await producer.send_and_wait(topic, value, key=stream.encode(), partition=0)
            await producer.send_and_wait(retry_topic("billing.collection", prefix), on_retry,
                                         key=b"LI-4")
        finally:
            await producer.stop()

        async def charges() -> list[dict[str, Any]]:
            r = await billing.client.get("/v1/accounts/HH-I/charges?period=2026-01",
                                         headers=billing.auth())
            return list(r.json()["items"]) if r.status_code == 200 else []

        await poll(charges)  # the genuine LI-1, written after the forgeries, is charged
        letters = await _dead_letters(kafka_bootstrap, prefix, count=3)
        await asyncio.sleep(0.5)
        assert [c["load_id"] for c in await charges()] == ["LI-1"]
    assert {(h["dlq.event_id"], h["dlq.reason"], h["dlq.topic"]) for h in letters} == {
        (json.loads(bad_hash)["event_id"], "integrity", topic),
        (foreign["event_id"], "integrity", topic),
        (json.loads(on_retry)["event_id"], "integrity", retry_topic("billing.collection", prefix)),
    }


async def _dead_letters(bootstrap: str, prefix: str, count: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(dead_letter_topic("billing.collection", prefix),
                                bootstrap_servers=bootstrap,
                                **kafka_client_options(), auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    letters: list[dict[str, str]] = []
    try:
        async def enough() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                letters.extend({k: v.decode() for k, v in r.headers} for r in records)
            return len(letters) >= count

        await poll(enough)
    finally:
        await consumer.stop()
    return letters
