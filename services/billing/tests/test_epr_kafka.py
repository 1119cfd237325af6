"""The EPR scheme end to end on real PostgreSQL and Kafka.

The chain's facts come the real way: event stores configured as the collection,
transfer and treatment services write them, their outbox relays publish them to the
run's prefixed topics, and the running billing app's consumers read them. Producers,
cashiers, collectors and auditors use the HTTP API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from wastetrail_billing.app import create_app
from wastetrail_billing.settings import BillingSettings
from wastetrail_contracts import SYSTEM_ACTOR, Event, decode, parse_payload
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    Category,
    CommuneClass,
    CustomerClass,
    GeneratorKind,
    Role,
    TreatmentMethod,
)
from wastetrail_contracts.events.billing import LedgerEntryPosted
from wastetrail_contracts.events.collection import GeneratorRegistered, LoadCollected
from wastetrail_contracts.events.transfer import Allocation, BatchConsolidated
from wastetrail_contracts.events.treatment import BatchReceived, TreatmentRecorded
from wastetrail_contracts.topics import event_topic, kafka_client_options
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import EventStore, ServiceMetadata
from wastetrail_runtime.topics import catalog_topics, ensure_topics

pytestmark = pytest.mark.integration

SECRET = "test-secret"
JUNE = datetime(2025, 6, 10, 3, 0, tzinfo=UTC)
JULY = datetime(2025, 7, 2, 3, 0, tzinfo=UTC)  # June has ended in Vietnam: invoice it
TARIFF = Path(__file__).parent.parent / "tariffs" / "rural_flat_example.toml"
UPSTREAM = ("collection", "transfer", "treatment")


@dataclass
class Upstream:
    """The collection, transfer and treatment services' event stores and outbox relays."""

    stores: dict[str, EventStore]
    relays: dict[str, OutboxRelay]

    async def emit(self, service: str, stream_id: str, *events: Event) -> None:
        """Record events as ``service`` would, and let its relay publish them to Kafka."""
        async with self.stores[service].unit_of_work() as uow:
            await uow.record(stream_id, list(events), actor=SYSTEM_ACTOR)
            await uow.commit()
        assert await self.relays[service].publish_pending() == len(events)


@pytest.fixture
def upstream_urls(make_database: Callable[[str], str]) -> dict[str, str]:
    return {service: make_database(f"epr_{service}") for service in UPSTREAM}


@pytest.fixture
async def upstream(upstream_urls: dict[str, str], kafka_bootstrap: str,
                   topic_prefix: str) -> AsyncIterator[Upstream]:
    await ensure_topics(kafka_bootstrap, catalog_topics(topic_prefix))
    producer: AIOKafkaProducer = make_producer(kafka_bootstrap)
    await producer.start()
    stores: dict[str, EventStore] = {}
    for service, url in upstream_urls.items():
        meta = ServiceMetadata()  # only the runtime's tables: event store and outbox
        db = Database(url, pool_size=2)
        async with db.engine.begin() as conn:
            await conn.run_sync(meta.metadata.create_all)
        stores[service] = EventStore(db, meta, service, topic_prefix=topic_prefix,
                                     clock=FixedClock(JUNE))
    yield Upstream(stores, {s: OutboxRelay(store, producer) for s, store in stores.items()})
    await producer.stop()
    for store in stores.values():
        await store.db.dispose()


@dataclass
class App:
    client: httpx.AsyncClient
    rt: ServiceRuntime
    clock: FixedClock

    @staticmethod
    def auth(role: Role, account_id: str | None = None,
             device_id: str | None = None) -> dict[str, str]:
        token = issue_token(SECRET, f"{role.value}-{account_id or device_id or 1}", role,
                            account_id=account_id, device_id=device_id)
        return {"authorization": f"Bearer {token}"}

    async def claim(self, claim_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/epr/claims/{claim_id}", headers=self.auth(Role.AUDITOR))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def claim_becomes(self, claim_id: str, check: Callable[[dict[str, Any]], bool],
                            within: float = 30) -> dict[str, Any]:
        """Poll a claim until ``check`` holds (the consumers run in the background)."""
        return await eventually(lambda: self.claim(claim_id), check, within)


async def eventually(read: Callable[[], Awaitable[Any]], check: Callable[[Any], bool],
                     within: float = 30) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await read()
        if check(value):
            return value
        assert loop.time() < deadline, f"condition never held; last value: {value!r}"
        await asyncio.sleep(0.1)


@pytest.fixture
def app_clock() -> FixedClock:
    return FixedClock(JUNE)


@pytest.fixture
async def billing(database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
                  app_clock: FixedClock) -> AsyncIterator[App]:
    settings = BillingSettings(
        service="billing", database_url=database_url, topic_prefix=topic_prefix,
        kafka_bootstrap_servers=kafka_bootstrap, jwt_secret=SECRET,
        keys_dir=tmp_path / "keys", local_dir=tmp_path, consumer_max_attempts=3,
    )
    app = create_app(settings, clock=app_clock)
    async with app.router.lifespan_context(app):
        rt: ServiceRuntime = app.state.runtime
        await eventually(lambda: asyncio.sleep(0, rt.kafka_ready), bool, within=60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield App(client, rt, app_clock)


def household(generator_id: str) -> GeneratorRegistered:
    return GeneratorRegistered(
        generator_id=generator_id, code=generator_id.upper(), kind=GeneratorKind.HOUSEHOLD,
        name=f"Hộ {generator_id}", commune="P01", commune_class=CommuneClass.URBAN,
        customer_class=CustomerClass.HOUSEHOLD)


def load(load_id: str, trip_id: str, generator_id: str, grams: int = 5_000) -> LoadCollected:
    return LoadCollected(
        load_id=load_id, trip_id=trip_id, generator_id=generator_id, commune="P01",
        category=Category.RECYCLABLE, measure="scale", grams=grams, collected_at=JUNE,
        device_id="dev-7", vehicle_id="51C-12345", idempotency_key=f"idem-{load_id}")


def batch(batch_id: str, trip_id: str, grams: int = 100_000) -> BatchConsolidated:
    return BatchConsolidated(
        batch_id=batch_id, station_id="ST-1", category=Category.RECYCLABLE,
        allocations=(Allocation(trip_id=trip_id, grams=grams),), total_grams=grams,
        seal_number=f"SEAL-{batch_id}")


def received(receipt_id: str, batch_id: str, *, refused: bool = False,
             grams: int = 100_000) -> BatchReceived:
    return BatchReceived(
        receipt_id=receipt_id, plant_id="PL-1", batch_id=batch_id,
        category=Category.RECYCLABLE, declared_grams=grams, received_grams=grams,
        accepted_grams=0 if refused else grams, refused_grams=grams if refused else 0,
        status=AcceptanceStatus.REFUSED if refused else AcceptanceStatus.ACCEPTED,
        refusal_reason="contaminated with food waste" if refused else "", received_at=JUNE)


def recycled(treatment_id: str, receipt_id: str, batch_id: str,
             grams: int = 100_000) -> TreatmentRecorded:
    return TreatmentRecorded(
        treatment_id=treatment_id, plant_id="PL-1", receipt_id=receipt_id, batch_id=batch_id,
        accepted_grams=grams, methods={TreatmentMethod.RECYCLING: grams}, treated_at=JUNE)


async def billing_events(bootstrap: str, prefix: str,
                         enough: Callable[[list[tuple[str, Event]]], bool],
                         within: float = 30) -> list[tuple[str, Event]]:
    """(type, payload) of what billing published, read from Kafka until ``enough``."""
    consumer = AIOKafkaConsumer(event_topic("billing", prefix), bootstrap_servers=bootstrap,
                                **kafka_client_options(),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: list[tuple[str, Event]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not enough(seen):
            assert loop.time() < deadline, f"billing topic never had enough: {len(seen)}"
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = decode(record.value)
                    seen.append((envelope.type, parse_payload(envelope)))
    finally:
        await consumer.stop()
    return seen


async def setup_scheme(app: App, *, pay: int) -> None:
    """PET bottles at 500 đ, 10,000 on the market in province 79, ``pay`` đ deposited."""
    admin, c = app.auth(Role.ADMIN), app.client
    r = await c.post("/v1/epr/producers", headers=admin, json={
        "producer_id": "bia-sg", "name": "Tổng Công ty Bia Sài Gòn",
        "tax_code": "0300588569", "kind": "producer"})
    assert r.status_code == 201, r.text
    r = await c.post("/v1/epr/producers/bia-sg/packaging", headers=admin, json={
        "sku": "PET-500", "material": "pet", "unit_grams": 25, "deposit_per_unit": 500,
        "effective_from": "2025-01-01"})
    assert r.status_code == 201, r.text
    r = await c.post("/v1/epr/producers/bia-sg/market-reports",
                     headers=app.auth(Role.PRODUCER, account_id="bia-sg"),
                     json={"report_id": "bia-sg-2025-05", "sku": "PET-500",
                           "period": "2025-05", "province": "79", "units": 10_000})
    assert r.status_code == 201, r.text
    assert r.json()["deposit_owed"] == 5_000_000
    if pay:
        r = await c.post("/v1/epr/producers/bia-sg/deposits", headers=app.auth(Role.CASHIER),
                         json={"payment_id": "bia-sg-pay-1", "amount": pay,
                               "reference": "VCB-778812"})
        assert r.status_code == 201, r.text


async def return_bottles(app: App, key: str, load_id: str, generator_id: str,
                         units: int = 120) -> httpx.Response:
    return await app.client.post(
        "/v1/epr/returns", headers=app.auth(Role.COLLECTOR, device_id="dev-7"),
        json={"idempotency_key": key, "load_id": load_id, "generator_id": generator_id,
              "province": "79", "lines": [{"sku": "PET-500", "units": units}]})


async def test_returned_bottles_are_refunded_only_after_the_plant_recycles_them(
    billing: App, upstream: Upstream, kafka_bootstrap: str, topic_prefix: str,
) -> None:
    app = billing
    await upstream.emit("collection", "gen-a", household("gen-a"))
    await upstream.emit("collection", "gen-b", household("gen-b"))
    r = await app.client.post("/v1/tariffs/rural-flat", content=TARIFF.read_bytes(),
                              headers=app.auth(Role.ADMIN) | {"content-type": "application/toml"})
    assert r.status_code == 201, r.text
    r = await app.client.put("/v1/communes/*/tariff", json={"tariff_id": "rural-flat"},
                             headers=app.auth(Role.ADMIN))
    assert r.status_code == 200, r.text
    await setup_scheme(app, pay=5_000_000)

    # A household hands 120 bottles to the collector at load L-1.
    await upstream.emit("collection", "L-1", load("L-1", "T-1", "gen-a"))
    r = await return_bottles(app, "dev-7:ret-1", "L-1", "gen-a")
    assert r.status_code == 201, r.text
    (claim,) = r.json()["claims"]
    assert (claim["status"], claim["units"], claim["amount"]) == ("pending", 120, 60_000)
    claim_id = claim["claim_id"]

    # Pending, link after link of the chain, until the plant has recycled the batch.
    await app.claim_becomes(claim_id, lambda c: c["reason"] ==
                            "awaiting consolidation of trip T-1 into a batch")
    await upstream.emit("transfer", "B-1", batch("B-1", "T-1"))
    await app.claim_becomes(claim_id, lambda c: c["reason"] ==
                            "awaiting the plant's receipt of batch B-1")
    await upstream.emit("treatment", "R-1", received("R-1", "B-1"))
    pending = await app.claim_becomes(claim_id, lambda c: c["reason"].startswith(
        "awaiting treatment of receipt R-1"))
    assert pending["status"] == "pending"
    account = await app.client.get("/v1/accounts/gen-a", headers=app.auth(Role.AUDITOR))
    assert account.json()["credit_available"] == 0

    await upstream.emit("treatment", "TR-1", recycled("TR-1", "R-1", "B-1"))
    credited = await app.claim_becomes(claim_id, lambda c: c["status"] == "credited")
    assert (credited["confirmed_amount"], credited["receipt_id"]) == (60_000, "R-1")
    account = await app.client.get("/v1/accounts/gen-a", headers=app.auth(Role.AUDITOR))
    assert account.json()["credit_available"] == 60_000

    # The household sees its refund; the auditor sees the scheme's balances.
    mine = await app.client.get("/v1/epr/claims", headers=app.auth(Role.HOUSEHOLD, "gen-a"))
    assert [c["claim_id"] for c in mine.json()["items"]] == [claim_id]
    theirs = await app.client.get("/v1/epr/claims", headers=app.auth(Role.HOUSEHOLD, "gen-b"))
    assert theirs.json()["items"] == []
    balances = (await app.client.get("/v1/epr/balances", headers=app.auth(Role.AUDITOR))).json()
    assert balances["escrow"] == 4_940_000
    producer = balances["producers"]["bia-sg"]
    assert {k: producer[k] for k in ("owed", "paid", "refunded", "unredeemed")} == {
        "owed": 5_000_000, "paid": 5_000_000, "refunded": 60_000, "unredeemed": 4_940_000}

    # The next invoice: 60,000 đ lower than the same flat fee of a neighbour without refunds.
    app.clock.set(JULY)
    r = await app.client.post("/v1/invoicing/runs", json={"period": "2025-06"},
                              headers=app.auth(Role.ADMIN))
    assert r.status_code == 200, r.text
    invoices = {}
    for gen in ("gen-a", "gen-b"):
        r = await app.client.get(f"/v1/accounts/{gen}/invoices", headers=app.auth(Role.AUDITOR))
        (invoices[gen],) = r.json()["items"]
    assert invoices["gen-a"]["credits"] == 60_000
    assert invoices["gen-a"]["total"] == invoices["gen-b"]["total"] - 60_000
    account = await app.client.get("/v1/accounts/gen-a", headers=app.auth(Role.AUDITOR))
    assert account.json()["credit_available"] == 0

    # What the auditor replays from Kafka: the exact EPR entries, and every entry balanced.
    def ledger(events: list[tuple[str, Event]]) -> dict[str, LedgerEntryPosted]:
        return {e.entry_id: e for t, e in events if isinstance(e, LedgerEntryPosted)}

    events = await billing_events(kafka_bootstrap, topic_prefix,
                                  lambda seen: "crd-INV-202506-gen-a" in ledger(seen))
    entries = ledger(events)
    legs = {entry_id: {(p.account, p.amount) for p in entry.postings}
            for entry_id, entry in entries.items()}
    assert legs["epr-mkt-bia-sg-2025-05"] == {("producer:bia-sg:receivable", 5_000_000),
                                              ("producer:bia-sg:deposits", -5_000_000)}
    assert legs["epr-dep-bia-sg-pay-1"] == {("epr:escrow", 5_000_000),
                                            ("producer:bia-sg:receivable", -5_000_000)}
    assert legs[f"epr-ref-{claim_id}"] == {("producer:bia-sg:deposits", 60_000),
                                           ("household:gen-a:credit", -60_000),
                                           ("cash:epr_refunds", 60_000),
                                           ("epr:escrow", -60_000)}
    assert legs["crd-INV-202506-gen-a"] == {("household:gen-a:credit", 60_000),
                                            ("household:gen-a:receivable", -60_000)}
    for entry_id, entry in entries.items():
        assert sum(p.amount for p in entry.postings) == 0, entry_id
    types = [t for t, e in events if getattr(e, "claim_id", None) == claim_id]
    assert types == ["epr.deposit_claim_opened", "epr.deposit_claim_confirmed",
                     "epr.deposit_claim_credited"]


async def test_refused_batch_and_double_claims_are_rejected_and_escrow_waits(
    billing: App, upstream: Upstream,
) -> None:
    app = billing
    await setup_scheme(app, pay=0)  # nothing in the escrow yet
    await upstream.emit("collection", "L-2", load("L-2", "T-2", "gen-c"))
    await upstream.emit("collection", "L-3", load("L-3", "T-3", "gen-d"))

    first = await return_bottles(app, "dev-7:ret-2", "L-2", "gen-c")
    assert first.status_code == 201, first.text
    (claim,) = first.json()["claims"]
    # The device retries: the same claim, not a new one.
    again = await return_bottles(app, "dev-7:ret-2", "L-2", "gen-c")
    assert again.status_code == 200
    assert [c["claim_id"] for c in again.json()["claims"]] == [claim["claim_id"]]
    # The same key for different units is refused, naming the field.
    reused = await return_bottles(app, "dev-7:ret-2", "L-2", "gen-c", units=500)
    assert reused.status_code == 409
    assert reused.json()["field"] == "idempotency_key"
    # Claiming the same bottles at the same load under a new key: rejected as a duplicate.
    double = await return_bottles(app, "dev-7:ret-3", "L-2", "gen-c")
    assert double.status_code == 201
    (dup,) = double.json()["claims"]
    assert (dup["status"], dup["reason_code"]) == ("rejected", "duplicate_claim")

    refused_claim = (await return_bottles(app, "dev-7:ret-4", "L-3", "gen-d")).json()["claims"][0]

    await upstream.emit("transfer", "B-2", batch("B-2", "T-2"))
    await upstream.emit("transfer", "B-3", batch("B-3", "T-3"))
    await upstream.emit("treatment", "R-3", received("R-3", "B-3", refused=True))
    rejected = await app.claim_becomes(refused_claim["claim_id"],
                                       lambda c: c["status"] == "rejected")
    assert rejected["reason_code"] == "material_refused"
    assert rejected["reason"] == ("batch B-3 was refused by the plant: "
                                  "contaminated with food waste")

    # Recycled, but the escrow is empty: confirmed, waiting — the escrow never goes negative.
    await upstream.emit("treatment", "R-2", received("R-2", "B-2"))
    await upstream.emit("treatment", "TR-2", recycled("TR-2", "R-2", "B-2"))
    waiting = await app.claim_becomes(claim["claim_id"], lambda c: c["status"] == "confirmed")
    assert waiting["reason"] == "confirmed; waiting for deposits in the escrow to credit it"
    balances = (await app.client.get("/v1/epr/balances", headers=app.auth(Role.AUDITOR))).json()
    assert (balances["escrow"], balances["confirmed_awaiting_escrow"]) == (0, 60_000)

    r = await app.client.post("/v1/epr/producers/bia-sg/deposits",
                              headers=app.auth(Role.CASHIER),
                              json={"payment_id": "late-pay", "amount": 100_000,
                                    "reference": "VCB-9"})
    assert r.status_code == 201, r.text
    assert r.json()["claims_credited"] == 1
    assert (await app.claim(claim["claim_id"]))["status"] == "credited"
    assert (await app.claim(dup["claim_id"]))["status"] == "rejected"
    balances = (await app.client.get("/v1/epr/balances", headers=app.auth(Role.AUDITOR))).json()
    assert balances["escrow"] == 40_000


async def test_the_api_names_the_offending_field_and_guards_roles(billing: App) -> None:
    app = billing
    r = await app.client.post(
        "/v1/epr/returns", headers=app.auth(Role.COLLECTOR, device_id="dev-7"),
        json={"idempotency_key": "k", "load_id": "L-9", "generator_id": "gen-a",
              "province": "79", "lines": [{"sku": "PET-500", "material": "pet",
                                           "grams": 100}]})
    assert r.status_code == 422
    assert r.json()["field"] == "lines.0"
    r = await app.client.post(
        "/v1/epr/returns", headers=app.auth(Role.COLLECTOR, device_id="dev-7"),
        json={"idempotency_key": "k", "load_id": "L-9", "generator_id": "gen-a",
              "province": "79", "lines": [{"sku": "NO-SUCH", "units": 3}]})
    assert (r.status_code, r.json()["field"]) == (422, "lines.0.sku")
    r = await app.client.post("/v1/epr/producers", headers=app.auth(Role.HOUSEHOLD, "gen-a"),
                              json={"producer_id": "x", "name": "x", "tax_code": "1",
                                    "kind": "producer"})
    assert r.status_code == 403
    r = await app.client.get("/v1/epr/producers/bia-sg/compliance?year=2025",
                             headers=app.auth(Role.PRODUCER, account_id="other"))
    assert r.status_code == 403
