"""Real processes for the fault tests: services, a private broker, a cuttable TCP link to
PostgreSQL, a scanning collector, and the independent checks every scenario ends with.

Every scenario runs the collection and billing services as ``wastetrail serve`` processes
(real Kafka, real PostgreSQL, fresh databases, its own topic prefix) and ends with:

* the mass balance — every load the collection API accepted is one row of billing's
  ``charges`` with the same grams, and billing has no other charge: read from billing's
  database by this harness, not through the services;
* ``audit replay`` over the scenario's topics: every chain verifies (duplicates from an
  at-least-once relay are counted, never accepted as new events) and the replayed log
  holds exactly the accepted loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

ROOT = Path(__file__).resolve().parents[2]
SECRET = "fault-test-secret-0123456789abcdef0123456789abcdef"
VNPAY_ENV = {
    "WASTETRAIL_VNPAY_TMN_CODE": "FAULTS01",
    "WASTETRAIL_VNPAY_HASH_SECRET": "FAULTSSECRETNOTFORPRODUCTION0000",
    "WASTETRAIL_VNPAY_PAYMENT_URL": "http://127.0.0.1:9/paymentv2/vpcpay.html",
    "WASTETRAIL_VNPAY_API_URL": "http://127.0.0.1:9/merchant_webapi/api/transaction",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not exit")


class ServiceProcess:
    """One ``wastetrail serve <service>`` process that a test may SIGKILL and start again."""

    def __init__(self, service: str, *, bootstrap: str, prefix: str, database_url: str,
                 logs: Path, label: str = "", env: dict[str, str] | None = None) -> None:
        self.service = service
        self.label = label or service
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.env = dict(os.environ)
        self.env.update({
            "WASTETRAIL_SERVICE": service, "WASTETRAIL_DATABASE_URL": database_url,
            "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WASTETRAIL_TOPIC_PREFIX": prefix,
            "WASTETRAIL_HTTP_PORT": str(self.port), "WASTETRAIL_JWT_SECRET": SECRET,
            "WASTETRAIL_LOCAL_DIR": str(logs), "WASTETRAIL_PUBLIC_URL": self.url,
            "WASTETRAIL_CHECKPOINT_EVERY_SECONDS": "1", **VNPAY_ENV,
        })
        self.env.pop("WASTETRAIL_FAILPOINT", None)
        self.env.pop("WASTETRAIL_FAILPOINT_RAISE", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @staticmethod
    def start_all(*procs: ServiceProcess) -> None:
        """Start several at once (each start spends seconds importing) and wait for all."""
        for proc in procs:
            proc.start(wait=False)
        for proc in procs:
            proc.wait_ready()

    def start(self, *, wait: bool = True, **env: str) -> ServiceProcess:
        """Start (again), with extra environment for this run only (e.g. a fail point)."""
        self.starts += 1
        log = (self.logs / f"{self.label}.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wastetrail.cli", "serve", self.service],
            env={**self.env, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def log_tail(self) -> str:
        path = self.logs / f"{self.label}.{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def readiness(self) -> tuple[int, dict[str, object]]:
        try:
            resp = httpx.get(f"{self.url}/readyz", timeout=5)
        except httpx.HTTPError:
            return 0, {}
        return resp.status_code, resp.json()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.label} exited {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            status, _body = self.readiness()
            if status == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.label} not ready: {self.readiness()}\n{self.log_tail()}")

    def wait_killed(self, timeout: float = 60) -> int:
        """Wait for the process to die (a fail point SIGKILLs it); its return code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.label} was not killed:\n{self.log_tail()}") from None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def metric(self, name: str) -> float:
        """The sum of a Prometheus counter over its labels (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))


@dataclass
class Scenario:
    """What one fault scenario runs against."""

    bootstrap: str
    prefix: str
    logs: Path
    make_database: Callable[[str], str]
    collection_db: str
    billing_db: str

    def service(self, name: str, *, label: str = "", bootstrap: str | None = None,
                database_url: str | None = None, **env: str) -> ServiceProcess:
        default_db = self.collection_db if name == "collection" else self.billing_db
        return ServiceProcess(name, bootstrap=bootstrap or self.bootstrap, prefix=self.prefix,
                              database_url=database_url or default_db, logs=self.logs,
                              label=label or name, env=env)


class PrivateBroker:
    """A throwaway single-node Kafka on free ports and a temporary data directory, started
    with the project's deploy/local/kafka.sh; a test may ``kill -9`` it and start it again."""

    def __init__(self, state: Path) -> None:
        self.port = free_port()
        controller = free_port()
        self.env = dict(os.environ, WASTETRAIL_KAFKA_PORT=str(self.port),
                        WASTETRAIL_KAFKA_CONTROLLER_PORT=str(controller),
                        WASTETRAIL_LOCAL_DIR=str(state))
        self.pidfile = state / "kafka" / "kafka.pid"
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _run(self, action: str) -> None:
        subprocess.run(["bash", str(ROOT / "deploy" / "local" / "kafka.sh"), action],
                       env=self.env, check=True, capture_output=True, timeout=180)

    def start(self) -> None:
        self._run("start")

    def kill9(self) -> None:
        pid = int(self.pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        self.pidfile.unlink()

    def stop(self) -> None:
        """Gone for good: the test's broker and its data are thrown away."""
        if self.pidfile.exists():
            self.kill9()


class TcpLink:
    """A TCP proxy in its own thread: ``cut()`` drops every connection and refuses new ones
    (PostgreSQL unreachable), ``restore()`` listens again on the same port."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.restore()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class Collector:
    """A collector with one vehicle and device, scanning the loads of registered households
    through the collection API; ``loads`` is the ground truth: load id → grams accepted."""

    url: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    households: int = 8
    loads: dict[str, int] = field(default_factory=dict)
    trip_loads: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    trips: int = 0
    failed_requests: int = 0

    @property
    def vehicle(self) -> str:
        return f"veh-{self.run}"

    def _headers(self, role: Role, **claims: str) -> dict[str, str]:
        return {"authorization": f"Bearer {issue_token(SECRET, 'fault', role, **claims)}"}

    async def register(self, client: httpx.AsyncClient, url: str | None = None) -> None:
        """Register the households, the collector, its vehicle and device."""
        base = url or self.url
        admin = self._headers(Role.ADMIN)
        for i in range(self.households):
            tag = f"tag-{self.run}-{i}"
            resp = await client.post(f"{base}/v1/generators", headers=admin, json={
                "code": f"hh-{self.run}-{i}", "name": f"Hộ {i}", "commune": f"{self.run}-ward",
                "commune_class": "urban", "tag_ids": [tag]})
            assert resp.status_code in (200, 201), resp.text
            self.tags.append(tag)
        for path, body in (
            ("/v1/collectors", {"collector_id": f"col-{self.run}", "name": "Công ty"}),
            ("/v1/vehicles", {"vehicle_id": self.vehicle, "plate": f"29C-{self.run}",
                              "collector_id": f"col-{self.run}", "capacity_grams": 8_000_000,
                              "registered_tare_grams": 5_000_000}),
            ("/v1/devices", {"device_id": f"dev-{self.run}", "collector_id": f"col-{self.run}",
                             "vehicle_id": self.vehicle}),
        ):
            resp = await client.post(f"{base}{path}", headers=admin, json=body)
            assert resp.status_code in (200, 201), resp.text

    async def trip(self, client: httpx.AsyncClient, *, scans: int = 40, chunk: int = 10,
                   url: str | None = None) -> list[str]:
        """One trip: start, ``scans`` loads synced in chunks (each retried until answered),
        close. Returns the accepted load ids in scan order."""
        base = url or self.url
        device = self._headers(Role.COLLECTOR, device_id=f"dev-{self.run}")
        self.trips += 1
        trip_id = f"trip-{self.run}-{self.trips}-{uuid.uuid4().hex[:4]}"
        start = datetime.now(UTC) - timedelta(hours=1)
        await self._until_answered(client, "POST", f"{base}/v1/trips", device, {
            "trip_id": trip_id, "vehicle_id": self.vehicle, "crew": ["a"],
            "commune": f"{self.run}-ward", "started_at": start.isoformat()})
        accepted: list[str] = []
        items = [{"idempotency_key": f"{trip_id}-{n}", "trip_id": trip_id,
                  "tag_id": self.tags[n % len(self.tags)], "category": "other",
                  "grams": 1000 + n, "collected_at": (start + timedelta(seconds=n)).isoformat()}
                 for n in range(scans)]
        for i in range(0, scans, chunk):
            part = items[i:i + chunk]
            body = await self._until_answered(client, "POST", f"{base}/v1/loads/batch", device,
                                              {"scans": part})
            for result, scan in zip(body["results"], part, strict=True):
                assert result["status"] in ("accepted", "duplicate"), result
                if result["id"] not in self.loads:
                    self.loads[result["id"]] = int(scan["grams"])  # type: ignore[arg-type]
                    accepted.append(result["id"])
        await self._until_answered(client, "POST", f"{base}/v1/trips/{trip_id}/close", device, {
            "declared_total_grams": sum(self.loads[i] for i in accepted),
            "closed_at": (start + timedelta(minutes=30)).isoformat()})
        self.trip_loads[trip_id] = accepted
        return accepted

    async def _until_answered(self, client: httpx.AsyncClient, method: str, url: str,
                              headers: dict[str, str], body: object) -> dict[str, object]:
        # A device retries what the service could not answer; idempotency keys make the
        # retry safe (a re-sent scan comes back "duplicate" with the same load id).
        for _ in range(120):
            try:
                resp = await client.request(method, url, headers=headers, json=body,
                                            timeout=10)
            except httpx.HTTPError:
                self.failed_requests += 1
                await asyncio.sleep(0.25)
                continue
            if resp.status_code >= 500:
                self.failed_requests += 1
                await asyncio.sleep(0.25)
                continue
            assert resp.status_code < 300 or resp.status_code == 409, resp.text
            out: dict[str, object] = resp.json()
            return out
        raise AssertionError(f"{url} never answered")


async def billing_charges(database_url: str) -> dict[str, tuple[int, int]]:
    """load id → (grams, seq) of billing's charges, read straight from its database."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT load_id, grams, seq FROM charges")
    finally:
        await conn.close()
    return {r["load_id"]: (int(r["grams"]), int(r["seq"])) for r in rows}


def all_loads(*collectors: Collector) -> dict[str, int]:
    """The ground truth of several collectors together."""
    return {load: grams for c in collectors for load, grams in c.loads.items()}


async def assert_mass_balance(database_url: str, *collectors: Collector,
                              wait_s: float = 60) -> dict[str, tuple[int, int]]:
    """Every accepted load is exactly one charge with its grams, and no charge is extra."""
    truth = all_loads(*collectors)
    deadline = time.monotonic() + wait_s
    charges: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        charges = await billing_charges(database_url)
        if len(charges) >= len(truth):
            break
        await asyncio.sleep(0.3)
    assert truth, "nothing was scanned"
    missing = set(truth) - set(charges)
    extra = set(charges) - set(truth)
    assert not missing and not extra, f"missing {len(missing)}, extra {len(extra)}"
    assert {k: g for k, (g, _s) in charges.items()} == truth
    assert sum(g for g, _s in charges.values()) == sum(truth.values())
    return charges


def assert_trip_order(charges: dict[str, tuple[int, int]], *collectors: Collector) -> None:
    """Nothing reordered: within each trip (one stream, one partition) billing numbered the
    charges in scan order."""
    trips = {t: loads for c in collectors for t, loads in c.trip_loads.items()}
    for trip_id, loads in trips.items():
        seqs = [charges[load][1] for load in loads]
        assert seqs == sorted(seqs), f"trip {trip_id} charged out of order"


def count_records(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (all partitions); 0 when it does not exist."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return 0
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        consumer.close()


def audit_replay(bootstrap: str, prefix: str, work_dir: Path,
                 *collectors: Collector, forged: frozenset[tuple[str, str]] = frozenset(),
                 ) -> dict[str, object]:
    """Run ``audit replay`` on the scenario's topics; it must pass, and its projection (the
    log alone) must hold exactly the accepted loads.

    ``forged``: (topic, kind) of records the scenario itself wrote outside the chain (junk
    on a retry topic): the replay must flag exactly those, and nothing else."""
    from typer.testing import CliRunner
    from wastetrail_audit.cli import app as audit

    result = CliRunner().invoke(audit, [
        "replay", "--bootstrap", bootstrap, "--topic-prefix", prefix,
        "--keys-dir", str(ROOT / ".local" / "keys"), "--work-dir", str(work_dir), "--quiet",
        "--json"])
    assert result.exit_code == (1 if forged else 0), result.output[-3000:]
    summary: dict[str, object] = json.loads(result.output[result.output.index("{"):])
    failures = summary.get("failures")
    assert isinstance(failures, list)
    assert {(str(f["topic"]), str(f["kind"])) for f in failures} == set(forged), failures
    if collectors:
        with contextlib.closing(sqlite3.connect(work_dir / "projection.sqlite")) as db:
            loads = {row[0]: row[1] for row in db.execute("SELECT load_id, grams FROM loads")}
        assert loads == all_loads(*collectors), "the replayed log lacks accepted loads"
    return summary


@contextlib.contextmanager
def services(*procs: ServiceProcess) -> Iterator[None]:
    """Stop every process on the way out, all at once."""
    try:
        yield
    finally:
        running = [p.proc for p in procs if p.proc is not None and p.proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
