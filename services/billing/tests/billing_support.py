"""Support of the billing service's tests: a running billing app on real PostgreSQL and
Kafka, a way to hand it other services' events through the real consumer path, and live
servers (uvicorn on loopback) for the VNPay sandbox and the browser test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from wastetrail_billing.adapters.tables import LedgerPosting
from wastetrail_billing.app import create_app
from wastetrail_billing.entrypoints.consumers import make_consumers
from wastetrail_billing.settings import BillingSettings
from wastetrail_contracts import SYSTEM_ACTOR, Envelope, Event, encode, uuid7
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.enums import Role
from wastetrail_contracts.topics import event_topic
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.consumer import ConsumerRunner, Record
from wastetrail_runtime.service import ServiceRuntime

SECRET = "test-secret"
TMN = "WTBILL01"
VNPAY_SECRET = "BILLINGTESTSECRETFORVNPAY0123456"
TARIFFS = Path(__file__).parent.parent / "tariffs"
# February 2026 has ended in Vietnam at this time, so January and February can be billed.
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
_STREAM_FIELDS = ("load_id", "refusal_id", "generator_id", "treatment_id", "batch_id",
                  "receipt_id", "trip_id")
_SOURCES = {"collection": "billing.collection", "transfer": "billing.transfer",
            "treatment": "billing.treatment"}


@dataclass
class Billing:
    """A running billing app, its HTTP client, its runtime and its clock."""

    client: httpx.AsyncClient
    rt: ServiceRuntime
    clock: FixedClock
    prefix: str
    app: FastAPI
    runners: dict[str, ConsumerRunner] = field(default_factory=dict)
    writers: dict[str, ChainWriter] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def auth(self, role: Role = Role.ADMIN, account_id: str | None = None) -> dict[str, str]:
        """Headers with a bearer token for a role (households: bound to an account)."""
        token = issue_token(SECRET, f"{role.value}-{account_id or 1}", role,
                            account_id=account_id)
        return {"authorization": f"Bearer {token}"}

    async def feed(self, *events: Event) -> list[Envelope]:
        """Hand other services' events to billing's consumers, as Kafka would.

        Real hash-chained envelopes, applied by the runtime's ConsumerRunner (decode,
        idempotency row, handler, commit); only the broker hop is skipped, to keep these
        tests fast and ordered. ``test_consumers_read_kafka`` covers the broker hop.
        """
        sent = []
        for event in events:
            origin = event.event_type.split(".", 1)[0]
            topic = event_topic(origin, self.prefix)
            writer = self.writers.setdefault(origin, ChainWriter(origin, topic, 0))
            stream_id = next(str(getattr(event, f)) for f in _STREAM_FIELDS
                             if getattr(event, f, None) is not None)
            self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
            now = self.clock.now()
            envelope = writer.append(event, stream_id=stream_id,
                                     stream_version=self.versions[stream_id],
                                     actor=SYSTEM_ACTOR, occurred_at=now, recorded_at=now,
                                     correlation_id=uuid7())
            await self.runners[_SOURCES[origin]].process(Record(
                topic=topic, partition=0, offset=envelope.chain_seq - 1,
                key=stream_id.encode(), value=encode(envelope)))
            sent.append(envelope)
        return sent

    async def stream(self, stream_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(type, payload) of every event billing stored on one stream."""
        return [(e.type, dict(e.payload)) for e in await self.rt.store.stream(stream_id)]

    async def postings(self, reference: str | None = None) -> list[tuple[str, str, int]]:
        """(entry_id, account, amount) of ledger postings, optionally of one reference."""
        query = select(LedgerPosting.entry_id, LedgerPosting.account, LedgerPosting.amount)  # type: ignore[call-overload]
        if reference is not None:
            query = query.where(LedgerPosting.reference == reference)
        async with self.rt.db.session() as session:
            rows = await session.execute(query.order_by(LedgerPosting.id))
            return [(r[0], r[1], int(r[2])) for r in rows]

    async def publish_tariff(self, tariff_id: str, toml: str, commune: str = "*") -> None:
        """Publish a tariff as an admin and make it price ``commune``."""
        r = await self.client.post(f"/v1/tariffs/{tariff_id}", content=toml.encode(),
                                   headers=self.auth() | {"content-type": "application/toml"})
        assert r.status_code in (200, 201), r.text
        r = await self.client.put(f"/v1/communes/{commune}/tariff",
                                  json={"tariff_id": tariff_id}, headers=self.auth())
        assert r.status_code == 200, r.text

    async def run_invoicing(self, period: str) -> dict[str, Any]:
        """Run invoicing for a period as an admin."""
        r = await self.client.post("/v1/invoicing/runs", json={"period": period},
                                   headers=self.auth())
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def billing_settings(database_url: str, kafka_bootstrap: str, prefix: str, tmp_path: Path,
                     **overrides: Any) -> BillingSettings:
    """Settings for a test app: VNPay credentials for the local sandbox, no live consumers."""
    values: dict[str, Any] = {
        "service": "billing", "database_url": database_url, "topic_prefix": prefix,
        "kafka_bootstrap_servers": kafka_bootstrap, "jwt_secret": SECRET,
        "keys_dir": tmp_path / "keys", "local_dir": tmp_path,
        "vnpay_tmn_code": TMN, "vnpay_hash_secret": VNPAY_SECRET,
        "vnpay_payment_url": "http://127.0.0.1:9/paymentv2/vpcpay.html",
        "vnpay_api_url": "http://127.0.0.1:9/merchant_webapi/api/transaction",
        "public_url": "http://billing.test",
        "run_consumers": False, "consumer_max_attempts": 1,
    }
    values.update(overrides)
    return BillingSettings(**values)


async def wait_ready(rt: ServiceRuntime, within: float = 60) -> None:
    """Wait until the app's Kafka side (producer, topics, consumers) is up."""
    deadline = asyncio.get_running_loop().time() + within
    while not rt.kafka_ready:
        assert asyncio.get_running_loop().time() < deadline, "Kafka did not get ready"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_billing(settings: BillingSettings, clock: FixedClock
                          ) -> AsyncIterator[Billing]:
    """Start the app (migrations, relay, consumers as configured) and wait for Kafka."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        rt: ServiceRuntime = app.state.runtime
        await wait_ready(rt)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            harness = Billing(client=client, rt=rt, clock=clock, prefix=settings.topic_prefix,
                              app=app)
            for consumer in make_consumers(rt):
                runner = ConsumerRunner(consumer, rt.store, rt.producer,  # type: ignore[arg-type]
                                        topic_prefix=settings.topic_prefix, max_attempts=1)

                async def fail(record: Record, reason: str, **_: Any) -> None:
                    raise AssertionError(f"handler failed on {record.topic}: {reason}")

                runner.dead_letter = fail  # type: ignore[method-assign]
                harness.runners[consumer.name] = runner
            yield harness


# ------------------------------------------------------------------ live servers


def free_socket() -> socket.socket:
    """A loopback socket bound to a free port (uvicorn listens on it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """An ASGI app served by uvicorn in its own thread and event loop, on loopback."""

    def __init__(self, app: FastAPI, sock: socket.socket | None = None) -> None:
        self.sock = sock or free_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", loop="asyncio", http="h11",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive(), "server thread died"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


# ------------------------------------------------------------------ event builders


class Events:
    """Builders of other services' events with sensible defaults."""

    @staticmethod
    def generator(generator_id: str, *, commune: str = "PHUONG-1",
                  commune_class: str = "urban", customer_class: str = "household",
                  kind: str = "household", active: bool = True) -> Event:
        from wastetrail_contracts.events.collection import GeneratorRegistered

        return GeneratorRegistered.model_validate({
            "generator_id": generator_id, "code": f"HH-{generator_id}", "kind": kind,
            "name": f"Hộ {generator_id}", "commune": commune, "commune_class": commune_class,
            "customer_class": customer_class, "active": active})

    @staticmethod
    def load(load_id: str, generator_id: str, grams: int, at: datetime, *,
             category: str = "other", measure: str = "scale", litres: int | None = None,
             bag_size: str | None = None, trip_id: str = "TRIP-1") -> Event:
        from wastetrail_contracts.events.collection import LoadCollected

        return LoadCollected.model_validate({
            "load_id": load_id, "trip_id": trip_id, "generator_id": generator_id,
            "commune": "PHUONG-1", "category": category, "measure": measure, "grams": grams,
            "litres": litres, "bag_size": bag_size, "collected_at": at, "device_id": "D1",
            "vehicle_id": "V1", "idempotency_key": load_id})

    @staticmethod
    def refusal(refusal_id: str, generator_id: str, at: datetime) -> Event:
        from wastetrail_contracts.events.collection import LoadRefused

        return LoadRefused.model_validate({
            "refusal_id": refusal_id, "generator_id": generator_id, "commune": "PHUONG-1",
            "reason": "unsorted", "refused_at": at, "device_id": "D1",
            "idempotency_key": refusal_id})

    @staticmethod
    def treated(treatment_id: str, grams_by_method: dict[str, int], at: datetime) -> Event:
        from wastetrail_contracts.events.treatment import TreatmentRecorded

        return TreatmentRecorded.model_validate({
            "treatment_id": treatment_id, "plant_id": "PLANT-1", "receipt_id": "R-1",
            "accepted_grams": sum(grams_by_method.values()), "methods": grams_by_method,
            "treated_at": at})




# ------------------------------------------------------------------ VNPay helpers

FLAT_TARIFF = TARIFFS / "rural_flat_example.toml"  # urban household: 60,000 đ a month


async def february_invoice(billing: Billing, account: str = "HH-1") -> str:
    """An open 60,000 đ invoice for February 2026 (flat tariff), returning its id."""
    await billing.publish_tariff("flat", FLAT_TARIFF.read_text())
    now = billing.clock.now()
    billing.clock.set(datetime(2026, 1, 15, tzinfo=UTC))  # registered before February
    await billing.feed(Events.generator(account))
    billing.clock.set(now)
    run = await billing.run_invoicing("2026-02")
    invoice_id = f"INV-202602-{account}"
    assert invoice_id in run["issued"] or run["already_issued"], run
    return invoice_id


async def start_vnpay(billing: Billing, invoice_id: str, account: str = "HH-1"
                      ) -> dict[str, Any]:
    """Start a VNPay payment as the household: {payment_id, amount, payment_url}."""
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/pay", json={},
                                  headers=billing.auth(Role.HOUSEHOLD, account))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def ipn_params(txn_ref: str, amount: int, *, response: str = "00", status: str = "00",
               transaction_no: str = "14000001") -> dict[str, str]:
    """The query VNPay's IPN carries (vnpay.md §2), before signing."""
    return {
        "vnp_TmnCode": TMN, "vnp_Amount": str(amount * 100), "vnp_BankCode": "NCB",
        "vnp_BankTranNo": f"VNP{transaction_no}", "vnp_CardType": "ATM",
        "vnp_PayDate": "20260302103000", "vnp_OrderInfo": "Thanh toan hoa don",
        "vnp_TransactionNo": transaction_no, "vnp_ResponseCode": response,
        "vnp_TransactionStatus": status, "vnp_TxnRef": txn_ref,
    }


async def send_ipn(billing: Billing, params: dict[str, str], *, secret: str = VNPAY_SECRET
                   ) -> dict[str, str]:
    """Call the IPN endpoint with a signed query, as VNPay does; returns its JSON answer."""
    from wastetrail_billing.adapters.vnpay import signed_query

    r = await billing.client.get(f"/v1/payments/vnpay/ipn?{signed_query(secret, params)}")
    assert r.status_code == 200, r.text
    answer: dict[str, str] = r.json()
    return answer
