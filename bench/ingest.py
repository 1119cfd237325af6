"""Ingest: offline batches of scans into collection, with transfer and billing running.

The three services run as processes (``python -m wastetrail.cli serve <svc>``) on free
ports, each with a fresh database and this run's own topic prefix, like the e2e test.
Phases:

1. throughput: batches of ``batch`` scans posted as fast as the API takes them (a few in
   flight) for ``duration`` seconds; loads/s accepted, and loads/s visible end to end
   (accepted loads / time until the last one is a charge in billing's projection);
2. latency at a fixed offered load ``rate`` loads/s for ``duration`` seconds: per load, from
   the batch's HTTP answer (accepted) to the load appearing in billing's ``charges``;
   billing's database is polled directly every 20 ms (polling the read API per account
   would load billing far more than the benchmark measures).
Baseline: the same number of ~1 KB messages produced and consumed by bare aiokafka.
Peak RSS of each service process is sampled throughout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from wastetrail_contracts.enums import Role
from wastetrail_contracts.topics import kafka_client_options
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.topics import ensure_topics

from bench.common import (
    MB,
    PeakRss,
    Result,
    delete_topics,
    drop_database,
    fresh_database,
    median,
    result,
)

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("collection", "transfer", "billing")
SECRET = "bench-secret-0123456789abcdef0123456789abcdef01234567"  # noqa: S105 — a throwaway stack
T0 = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
PERIOD = "2026-10"  # every load is collected on 1 October, Vietnam time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """The services started for one run."""

    urls: dict[str, str] = field(default_factory=dict)
    dbs: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path = Path()
    bootstrap: str = ""
    prefix: str = ""


async def start_stack(admin_url: str, bootstrap: str, prefix: str) -> Stack:
    """The services as processes on free ports, fresh databases, ready."""
    await ensure_topics(bootstrap, prefix=prefix)
    stack = Stack(logs=Path(tempfile.mkdtemp(prefix="bench-ingest-")), bootstrap=bootstrap,
                  prefix=prefix)
    for service in SERVICES:
        port = _free_port()
        url = await fresh_database(admin_url, f"ing{service[:4]}")
        stack.dbs[service] = url
        env = dict(os.environ)
        env.update({
            "WASTETRAIL_SERVICE": service,
            "WASTETRAIL_DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://"),
            "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WASTETRAIL_TOPIC_PREFIX": prefix, "WASTETRAIL_HTTP_PORT": str(port),
            "WASTETRAIL_JWT_SECRET": SECRET, "WASTETRAIL_LOCAL_DIR": str(stack.logs),
            "WASTETRAIL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        })
        log = (stack.logs / f"{service}.log").open("wb")
        # Popen returns at once (the process starts in the background); S603: our own argv.
        stack.procs[service] = subprocess.Popen(  # noqa: ASYNC220, S603
            [sys.executable, "-m", "wastetrail.cli", "serve", service], env=env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT)
        stack.urls[service] = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    async with httpx.AsyncClient(timeout=2) as client:
        for service, url in stack.urls.items():
            while True:
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or stack.procs[service].poll() is not None:
                    text = (stack.logs / f"{service}.log").read_text(errors="replace")[-2000:]
                    await stop_stack(admin_url, stack)
                    raise RuntimeError(f"{service} not ready:\n{text}")
                await asyncio.sleep(0.5)
    return stack


async def stop_stack(admin_url: str, stack: Stack) -> None:
    """Stop the processes this benchmark started and drop their databases."""
    for proc in stack.procs.values():
        proc.terminate()
    for proc in stack.procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    for url in stack.dbs.values():
        try:
            await drop_database(admin_url, url)
        except Exception:  # noqa: S110 — a leftover database is harmless
            pass
    await delete_topics(stack.bootstrap, stack.prefix)  # events, retries, dead letters


@dataclass
class Lane:
    """One vehicle on its round: its device's credentials and its open trip."""

    trip: str
    headers: dict[str, str]
    sent: int = 0


@dataclass
class Sender:
    """Registers a generator population and ``lanes`` vehicles, each with a device and an
    open trip, and posts scan batches for them.

    A province at thousands of loads a second has hundreds of vehicles on their rounds;
    collection events are keyed by trip, so one trip alone would put every load on one
    partition and serialise every batch on one trip's row lock.
    """

    client: httpx.AsyncClient
    base: str
    generators: int
    lanes: int = 8
    tags: list[str] = field(default_factory=list)
    trips: list[Lane] = field(default_factory=list)
    turn: int = 0

    async def setup(self, run: str) -> None:
        admin = {"Authorization": f"Bearer {issue_token(SECRET, 'bench', Role.ADMIN)}"}

        async def post(path: str, body: object,
                       headers: dict[str, str] = admin) -> httpx.Response:
            resp = await self.client.post(self.base + path, json=body, headers=headers)
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text[:300]}")
            return resp

        sem = asyncio.Semaphore(8)

        async def register(n: int) -> None:
            async with sem:
                tag = f"T{run}{n:05d}"
                await post("/v1/generators", {
                    "code": f"G{run}{n:05d}", "name": f"Hộ {n}", "commune": "P01",
                    "commune_class": "urban", "tag_ids": [tag]})
                self.tags.append(tag)

        await asyncio.gather(*(register(n) for n in range(self.generators)))
        await post("/v1/collectors", {"collector_id": f"c{run}", "name": "Bench collector"})
        for lane in range(self.lanes):
            vehicle, device = f"v{run}-{lane}", f"d{run}-{lane}"
            await post("/v1/vehicles", {"vehicle_id": vehicle, "plate": f"29C-{lane:03d}",
                                        "collector_id": f"c{run}", "capacity_grams": 90_000_000,
                                        "registered_tare_grams": 5_000_000})
            await post("/v1/devices", {"device_id": device, "collector_id": f"c{run}",
                                       "vehicle_id": vehicle})
            token = issue_token(SECRET, device, Role.COLLECTOR, device_id=device)
            headers = {"Authorization": f"Bearer {token}"}
            trip = f"trip-{run}-{lane}"
            await post("/v1/trips", {"trip_id": trip, "vehicle_id": vehicle, "crew": ["a"],
                                     "commune": "P01", "started_at": T0.isoformat()}, headers)
            self.trips.append(Lane(trip, headers))

    async def batch(self, size: int, lane: int | None = None) -> tuple[list[str], float]:
        """Post one batch for a lane (the next one in turn if None);
        (accepted load ids, monotonic time of the answer)."""
        if lane is None:
            lane, self.turn = self.turn % len(self.trips), self.turn + 1
        trip = self.trips[lane]
        scans = []
        for _ in range(size):
            n = trip.sent
            trip.sent += 1
            scans.append({"idempotency_key": f"{trip.trip}-{n}", "trip_id": trip.trip,
                          "tag_id": self.tags[n % len(self.tags)],
                          "category": "food" if n % 2 else "other", "grams": 100 + n % 200,
                          "collected_at": (T0 + timedelta(seconds=1 + n // 1000)).isoformat()})
        resp = await self.client.post(self.base + "/v1/loads/batch", headers=trip.headers,
                                      json={"scans": scans})
        answered = time.monotonic()
        if resp.status_code != 200:
            raise RuntimeError(f"batch: {resp.status_code} {resp.text[:300]}")
        return [str(r["id"]) for r in resp.json()["results"] if r["status"] == "accepted"], answered


async def _charges(billing_db: str) -> asyncpg.Connection:
    return await asyncpg.connect(billing_db)


async def throughput(sender: Sender, billing: asyncpg.Connection, *, batch: int,
                     duration: float, in_flight: int = 8) -> tuple[float, float, int]:
    """(accepted loads/s, end-to-end loads/s visible in billing, loads accepted)."""
    before = int(await billing.fetchval("SELECT count(*) FROM charges"))
    accepted = 0
    started = time.monotonic()
    stop = started + duration

    async def worker(lane: int) -> None:
        nonlocal accepted
        while time.monotonic() < stop:
            ids, _ = await sender.batch(batch, lane)
            accepted += len(ids)

    # One request in flight per vehicle, as devices sync: several vehicles at once.
    await asyncio.gather(*(worker(lane) for lane in range(min(in_flight, len(sender.trips)))))
    sent_secs = time.monotonic() - started
    deadline = time.monotonic() + max(300.0, 10 * duration)
    while True:
        seen = int(await billing.fetchval("SELECT count(*) FROM charges")) - before
        if seen >= accepted or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    visible_secs = time.monotonic() - started
    return accepted / sent_secs, seen / visible_secs, accepted


async def latency(sender: Sender, billing: asyncpg.Connection, *, batch: int, rate: float,
                  duration: float) -> list[float]:
    """Seconds from accepted to visible in billing, per load, at ``rate`` loads/s offered."""
    pending: dict[str, float] = {}
    latencies: list[float] = []
    interval = batch / rate
    done = asyncio.Event()

    async def send() -> None:
        ids, at = await sender.batch(batch)
        for load_id in ids:
            pending[load_id] = at

    async def offer() -> None:
        # Open loop: a batch leaves every ``interval`` whether or not the previous one was
        # answered (vehicles do not wait for each other), round robin over the vehicles.
        start = time.monotonic()
        n = 0
        sent: list[asyncio.Task[None]] = []
        while time.monotonic() - start < duration:
            sent.append(asyncio.create_task(send()))
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
        await asyncio.gather(*sent)
        done.set()

    async def watch() -> None:
        give_up: float | None = None
        # Charges are numbered as billing inserts them (charges.seq): read only the new
        # ones, with a margin for transactions that took a number earlier and committed
        # later (a consumer batch is at most 500 rows). Asking for every pending id each
        # time loaded billing's database more than the benchmark measures.
        last = int(await billing.fetchval(
            "SELECT coalesce(max(seq), 0) FROM charges WHERE period = $1", PERIOD))
        while True:
            if pending:
                rows = await billing.fetch(
                    "SELECT load_id, seq FROM charges WHERE period = $2 AND seq > $1",
                    max(0, last - 2000), PERIOD)
                now = time.monotonic()
                for load_id, seq in rows:
                    last = max(last, int(seq))
                    at = pending.pop(load_id, None)
                    if at is not None:
                        latencies.append(now - at)
            if done.is_set():
                give_up = give_up or time.monotonic() + 60
                if not pending or time.monotonic() > give_up:
                    return
            await asyncio.sleep(0.02)

    await asyncio.gather(offer(), watch())
    return latencies


async def bare_kafka(bootstrap: str, topic: str, messages: int, size: int = 1000) -> float:
    """Messages/s produced and consumed (to the last one) by bare aiokafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                **kafka_client_options(), auto_offset_reset="earliest",
                                group_id=f"bench-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap,
                                **kafka_client_options(), acks="all", linger_ms=5)
    await producer.start()
    value = b"x" * size
    try:
        started = time.monotonic()

        async def produce() -> None:
            for start in range(0, messages, 200):
                futures = [await producer.send(topic, value, key=str(i).encode())
                           for i in range(start, min(start + 200, messages))]
                await asyncio.gather(*futures)

        async def consume() -> None:
            got = 0
            while got < messages:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                got += sum(len(v) for v in batches.values())

        await asyncio.gather(produce(), consume())
        return messages / (time.monotonic() - started)
    finally:
        await producer.stop()
        await consumer.stop()
        await delete_topics(bootstrap, topic)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(admin_url: str, bootstrap: str, *, duration: float, batch: int, rate: float,
              runs: int, generators: int = 200, results_dir: Path | None = None,
              log: bool = True) -> list[Result]:
    """The ingest benchmarks; one stack per run."""
    accepted_rates: list[float] = []
    e2e_rates: list[float] = []
    p50s: list[float] = []
    p99s: list[float] = []
    bare_rates: list[float] = []
    bare_latency: list[float] = []
    rss: dict[str, list[float]] = {s: [] for s in SERVICES}
    for i in range(runs):
        tag = uuid.uuid4().hex[:6]
        prefix = f"bench{tag}.ingest."
        stack = await start_stack(admin_url, bootstrap, prefix)
        try:
            pids = {s: p.pid for s, p in stack.procs.items()}
            billing = await _charges(stack.dbs["billing"])
            try:
                async with httpx.AsyncClient(timeout=120) as client:
                    sender = Sender(client, stack.urls["collection"], generators)
                    await sender.setup(f"{tag}{i}")
                    samplers = {s: PeakRss([pid]) for s, pid in pids.items()}
                    for sampler in samplers.values():
                        sampler.__enter__()
                    try:
                        acc, e2e, count = await throughput(sender, billing, batch=batch,
                                                           duration=duration)
                        lat = await latency(sender, billing, batch=batch, rate=rate,
                                            duration=duration)
                    finally:
                        for sampler in samplers.values():
                            sampler.__exit__(None, None, None)
            finally:
                await billing.close()
        finally:
            await stop_stack(admin_url, stack)
        accepted_rates.append(acc)
        e2e_rates.append(e2e)
        p50s.append(_percentile(lat, 0.50) * 1000)
        p99s.append(_percentile(lat, 0.99) * 1000)
        for service, sampler in samplers.items():
            rss[service].append(sampler.peak_total / MB)
        started = time.monotonic()
        bare_rates.append(await bare_kafka(bootstrap, f"bench{tag}.bare", count))
        bare_latency.append(time.monotonic() - started)
        if log:
            print(f"  ingest: {count:,} loads, accepted {acc:,.0f}/s, in billing {e2e:,.0f}/s; "
                  f"latency at {rate:.0f}/s p50 {p50s[-1]:.0f} ms p99 {p99s[-1]:.0f} ms "
                  f"({len(lat)} loads); bare aiokafka {bare_rates[-1]:,.0f} msg/s; RSS "
                  + ", ".join(f"{s} {v[-1]:.0f} MB" for s, v in rss.items()))
    results = [
        result("ingest_accepted", median(accepted_rates), "loads/s", target=3000.0,
               baseline=median(bare_rates), results_dir=results_dir),
        result("ingest_end_to_end", median(e2e_rates), "loads/s", target=3000.0,
               baseline=median(bare_rates), results_dir=results_dir),
        # No bare latency baseline is measured; the issue's target is p99 <= 500 ms at
        # 1,000 loads/s offered (here at ``rate``).
        result("ingest_latency_p50", median(p50s), "ms", target=None, baseline=None,
               higher_is_better=False, results_dir=results_dir),
        result("ingest_latency_p99", median(p99s), "ms", target=500.0, baseline=None,
               higher_is_better=False, results_dir=results_dir),
    ]
    for service, values in rss.items():
        results.append(result(f"ingest_peak_rss_{service}", median(values), "MB", target=200.0,
                              baseline=None, higher_is_better=False, results_dir=results_dir))
    return results
