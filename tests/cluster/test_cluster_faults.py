"""Scale-out on a real three-broker cluster: a broker killed with kill -9 during ingest and a
billing replica killed with kill -9 lose nothing and apply nothing twice.

The brokers are deploy/local/cluster.sh's (own ports and state, never the shared broker),
with replication factor 3 and min.insync.replicas 2; collection and billing run two
replicas each (wastetrail.devstack.cluster), each service's replicas on one fresh database
of the shared PostgreSQL. Every load collection accepted must be charged by billing exactly
once, and `audit replay` must find the log clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from wastetrail_contracts.enums import Role
from wastetrail_contracts.topics import EVENT_TOPICS
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.topics import TopicLayout, ensure_topics

from wastetrail.devstack import cluster, processes

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "deploy/local/cluster.sh"
SECRET = "cluster-test-secret-0123456789abcdef0123456789abcdef"
RUN = uuid.uuid4().hex[:6]
SERVICES = ("collection", "billing")
BATCHES, PER_BATCH = 24, 25
KILL_BROKER_AT, KILL_REPLICA_AT = 6, 12

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(600)]


@dataclass
class Cluster:
    state: Path
    base: int
    prefix: str
    bootstrap: str
    urls: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)

    def broker_pid(self, node: int) -> int:
        return int((self.state / f"node{node}" / "kafka.pid").read_text())


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base() -> int:
    rng = random.Random()
    while True:
        base = rng.randrange(30_000, 60_000, 100)
        if all(_free(base + d) for d in (0, 1, 2, 10, 11, 12)):
            return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, str]]:
    state = tmp_path_factory.mktemp("cluster")
    base = _free_base()
    env = dict(os.environ, WASTETRAIL_CLUSTER_DIR=str(state), WASTETRAIL_CLUSTER_PORT=str(base))
    try:
        subprocess.run(["bash", str(CLUSTER_SH), "brokers"], env=env, check=True)
        yield state, base, ",".join(f"127.0.0.1:{base + d}" for d in (0, 1, 2))
    finally:
        subprocess.run(["bash", str(CLUSTER_SH), "stop-brokers"], env=env, check=False)


@pytest.fixture(scope="module")
def scaled(brokers: tuple[Path, int, str], make_database: Callable[[str], str]
           ) -> Iterator[Cluster]:
    """Collection and billing, two replicas each, on the three brokers."""
    state, base, bootstrap = brokers
    c = Cluster(state, base, f"cl{RUN}.", bootstrap)
    asyncio.run(ensure_topics(bootstrap, prefix=c.prefix, layout=TopicLayout(
        replication_factor=3, min_insync_replicas=2)))
    try:
        for service in SERVICES:
            c.databases[service] = make_database(f"cl{service}")
            for replica in (1, 2):
                port = _free_port()
                name = cluster.replica_name(service, replica, tag=f"t{RUN}")
                env = cluster.replica_env(service, bootstrap=bootstrap,
                                          database=c.databases[service], port=port,
                                          state=state, prefix=c.prefix)
                env["WASTETRAIL_JWT_SECRET"] = SECRET
                env["WASTETRAIL_LAG_POLL_SECONDS"] = "2"
                cluster.start_replica(name, service, env)
                c.urls.setdefault(service, []).append(f"http://127.0.0.1:{port}")
                c.names.setdefault(service, []).append(name)
        for service in SERVICES:
            for url, name in zip(c.urls[service], c.names[service], strict=True):
                if not cluster.wait_ready(url, name):
                    log = processes.LOG_DIR / f"{name}.log"
                    pytest.fail(f"{name} not ready:\n{log.read_text(errors='replace')[-3000:]}")
        yield c
    finally:
        for names in c.names.values():
            for name in names:
                processes.stop(name, timeout=10)


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _layout(c: Cluster) -> tuple[set[int], set[str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=c.bootstrap)
    await admin.start()
    try:
        topic = EVENT_TOPICS["collection"].qualified(c.prefix)
        (described,) = await admin.describe_topics([topic])
        replicas = {len(p["replicas"]) for p in described["partitions"]}
        leaders = {p["leader"] for p in described["partitions"]}
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
        assert replicas == {3} and entries["min.insync.replicas"] == "2"
        return leaders, {str(p["partition"]) for p in described["partitions"]}
    finally:
        await admin.close()


async def _charges(database: str) -> dict[str, int]:
    conn = await asyncpg.connect(database.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT load_id, grams FROM charges")
    finally:
        await conn.close()
    return {r["load_id"]: r["grams"] for r in rows}


async def test_a_broker_and_a_replica_killed_during_ingest_lose_nothing_and_apply_nothing_twice(
    scaled: Cluster, tmp_path: Path,
) -> None:
    c = scaled
    await _layout(c)
    admin = {"Authorization": f"Bearer {issue_token(SECRET, 'cl-admin', Role.ADMIN)}"}
    device_id, vehicle, commune = f"{RUN}-dev", f"{RUN}-veh", f"{RUN}-ward"
    device = {"Authorization": "Bearer " + issue_token(SECRET, device_id, Role.COLLECTOR,
                                                       device_id=device_id)}
    coll = c.urls["collection"]
    async with httpx.AsyncClient(timeout=60) as http:
        async def post(url: str, body: object, headers: dict[str, str]) -> httpx.Response:
            r = await http.post(url, json=body, headers=headers)
            assert r.status_code in (200, 201), f"{url}: {r.status_code} {r.text[:300]}"
            return r

        tags = []
        for i in range(PER_BATCH):
            tag = f"TAG-{RUN}-{i:03d}"
            await post(f"{coll[i % 2]}/v1/generators", {
                "code": f"{RUN}-hh{i:03d}", "kind": "household", "name": f"Hộ {i}",
                "commune": commune, "commune_class": "urban", "members": 3, "tag_ids": [tag]},
                admin)
            tags.append(tag)
        await post(f"{coll[0]}/v1/collectors", {"collector_id": f"{RUN}-coll", "name": "C"}, admin)
        await post(f"{coll[0]}/v1/vehicles", {
            "vehicle_id": vehicle, "plate": f"29C-{RUN}", "collector_id": f"{RUN}-coll",
            "capacity_grams": 8_000_000, "registered_tare_grams": 5_000_000}, admin)
        await post(f"{coll[0]}/v1/devices", {"device_id": device_id,
                                             "collector_id": f"{RUN}-coll",
                                             "vehicle_id": vehicle}, admin)
        d0 = datetime.now(UTC) - timedelta(hours=2)
        trip_id = f"{RUN}-trip"
        await post(f"{coll[0]}/v1/trips", {"trip_id": trip_id, "vehicle_id": vehicle,
                                           "crew": ["a", "b"], "commune": commune,
                                           "started_at": d0.isoformat()}, device)

        accepted: dict[str, int] = {}
        duplicates = 0
        consumed_before_kill = 0.0
        sent: list[list[dict[str, object]]] = []
        for b in range(BATCHES):
            if b == KILL_BROKER_AT:
                os.kill(c.broker_pid(2), signal.SIGKILL)
            if b == KILL_REPLICA_AT:
                metrics = (await http.get(f"{c.urls['billing'][0]}/metrics")).text
                consumed_before_kill = _metric(metrics, "wastetrail_events_consumed_total",
                                               consumer="billing.collection")
                pid = processes.running(c.names["billing"][0])
                assert pid
                os.killpg(pid, signal.SIGKILL)
            at = (d0 + timedelta(seconds=b)).isoformat()
            scans: list[dict[str, object]] = [
                {"idempotency_key": f"{trip_id}-{b}-{i}", "trip_id": trip_id, "tag_id": tag,
                 "category": ("food", "other", "recyclable")[i % 3],
                 "grams": 1000 + 37 * b + i, "collected_at": at}
                for i, tag in enumerate(tags)]
            if b % 8 == 7:  # a device re-sends an earlier batch
                scans = sent[-3]
            else:
                sent.append(scans)
            res = (await post(f"{coll[b % 2]}/v1/loads/batch", {"scans": scans}, device)).json()
            for item, scan in zip(res["results"], scans, strict=True):
                if item["status"] == "accepted":
                    accepted[item["id"]] = int(str(scan["grams"]))
                else:
                    assert item["status"] == "duplicate", item
                    duplicates += 1
            await asyncio.sleep(0.3)

        assert duplicates == PER_BATCH * (BATCHES // 8)
        assert len(accepted) == PER_BATCH * (BATCHES - BATCHES // 8)
        assert consumed_before_kill > 0  # the killed replica held partitions and worked

        # Billing's surviving replica catches up on every partition.
        charges: dict[str, int] = {}
        deadline = asyncio.get_running_loop().time() + 240
        while asyncio.get_running_loop().time() < deadline:
            charges = await _charges(c.databases["billing"])
            if set(accepted) <= set(charges):
                break
            await asyncio.sleep(2)
        missing = set(accepted) - set(charges)
        assert not missing, f"{len(missing)} of {len(accepted)} loads never charged"
        assert charges == accepted  # each load charged once, with its grams; nothing else
        survivor = (await http.get(f"{c.urls['billing'][1]}/metrics")).text

    leaders, partitions = await _layout(c)
    assert 2 not in leaders  # leadership moved off the killed broker
    consumed_after = _metric(survivor, "wastetrail_events_consumed_total",
                             consumer="billing.collection")
    assert consumed_after > 0
    lag = sum(_metric(survivor, "wastetrail_consumer_lag", consumer="billing.collection",
                      partition=p) for p in partitions)
    print(f"cluster: {len(accepted)} loads charged once; {duplicates} re-sent scans refused; "
          f"billing survivor applied {consumed_after:.0f}, skipped "
          f"{_metric(survivor, 'wastetrail_events_duplicate_total'):.0f} redelivered; "
          f"lag {lag:.0f}")

    replay = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "wastetrail.cli", "audit", "replay", "--bootstrap", c.bootstrap,
         "--topic-prefix", c.prefix, "--keys-dir", str(c.state / "keys"), "--work-dir",
         str(tmp_path / "audit"), "--json", "--quiet"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    summary = json.loads(replay.stdout)
    assert summary["failure_count"] == 0, summary.get("failures")
    assert summary["events"] >= len(accepted)
