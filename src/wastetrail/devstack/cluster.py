"""Two replicas of every service on the local three-broker cluster (deploy/local/cluster.sh).

Each replica is a ``wastetrail serve`` process of its own, in its service's consumer
groups, with the cluster's topic layout (replication factor 3, min.insync.replicas 2).
The replicas of a service share its database (their relays take turns by advisory lock)
and its signing key. Ports: replica r of a service listens on the service's port + 100 r
(collection 8101 and 8201, ...). Databases are the project's PostgreSQL's
``wastetrail_cluster_<service>``, created when missing.

    python -m wastetrail.devstack.cluster up|down|status
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx

from wastetrail.devstack import processes
from wastetrail.devstack.infra import PG_ADMIN_URL, PG_PORT, ROOT

CLUSTER_DIR = Path(os.environ.get("WASTETRAIL_CLUSTER_DIR", ROOT / ".local" / "cluster"))
REPLICAS = 2
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


def replica_name(service: str, replica: int, tag: str = "cluster") -> str:
    """The process name (pid file, log file) of one replica."""
    return f"{tag}-{service}-{replica}"


def replica_port(service: str, replica: int) -> int:
    """The HTTP port of one replica of ``make cluster``."""
    return processes.PORTS[service] + 100 * replica


def database_url(service: str) -> str:
    """The cluster's own database of a service, on the project's PostgreSQL."""
    return f"postgresql+asyncpg://wastetrail@127.0.0.1:{PG_PORT}/wastetrail_cluster_{service}"


def replica_env(service: str, *, bootstrap: str, database: str, port: int, state: Path,
                prefix: str = "") -> dict[str, str]:
    """A replica's environment: the service's local settings on the cluster's brokers."""
    env = processes.service_env(service)
    env.update({
        "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WASTETRAIL_DATABASE_URL": database,
        "WASTETRAIL_HTTP_PORT": str(port),
        "WASTETRAIL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WASTETRAIL_TOPIC_PREFIX": prefix,
        "WASTETRAIL_TOPIC_REPLICATION_FACTOR": str(REPLICATION_FACTOR),
        "WASTETRAIL_TOPIC_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
        "WASTETRAIL_LOCAL_DIR": str(state / "services"),
        "WASTETRAIL_KEYS_DIR": str(state / "keys"),
    })
    if "WASTETRAIL_JWT_SECRET" not in os.environ:
        # make up's secret, read once here so every replica (and `wastetrail token`) agrees
        env["WASTETRAIL_JWT_SECRET"] = _jwt_secret()
    return env


def _jwt_secret() -> str:
    from wastetrail_runtime.settings import ServiceSettings

    return ServiceSettings(local_dir=ROOT / ".local").resolved_jwt_secret()


def start_replica(name: str, service: str, env: dict[str, str]) -> int:
    """Start one replica (a background process with a pid file); returns its pid."""
    return processes.start(name, [sys.executable, "-m", "wastetrail.cli", "serve", service],
                           env)


def wait_ready(url: str, name: str, timeout: float = 180) -> bool:
    """Wait until a replica's /readyz says ready (False if it died or timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if not processes.running(name):
            return False
        time.sleep(0.5)
    return False


async def _ensure_databases() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        have = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for service in processes.SERVICES:
            if f"wastetrail_cluster_{service}" not in have:
                await conn.execute(f'CREATE DATABASE "wastetrail_cluster_{service}"')
    finally:
        await conn.close()


def up() -> int:
    """Start two replicas of every service against the running brokers."""
    from wastetrail_runtime.topics import TopicLayout, ensure_topics

    from wastetrail.devstack.infra import ensure_postgres

    bootstrap = os.environ["WASTETRAIL_CLUSTER_BOOTSTRAP"]
    ensure_postgres()
    asyncio.run(_ensure_databases())
    asyncio.run(ensure_topics(bootstrap, layout=TopicLayout(
        replication_factor=REPLICATION_FACTOR, min_insync_replicas=MIN_INSYNC_REPLICAS)))
    started: list[tuple[str, str]] = []
    for service in processes.SERVICES:
        for replica in range(1, REPLICAS + 1):
            port = replica_port(service, replica)
            name = replica_name(service, replica)
            start_replica(name, service, replica_env(
                service, bootstrap=bootstrap, database=database_url(service), port=port,
                state=CLUSTER_DIR))
            started.append((name, f"http://127.0.0.1:{port}"))
    failed = [name for name, url in started if not wait_ready(url, name)]
    for name, url in started:
        print(f"{name:<24} {url}/docs")
    if failed:
        print(f"not ready: {', '.join(failed)} — see .local/logs/", file=sys.stderr)
        return 1
    print(f"kafka {bootstrap}")
    return 0


def _names() -> list[str]:
    return [replica_name(s, r) for s in processes.SERVICES for r in range(1, REPLICAS + 1)]


def down() -> int:
    """Stop every replica of the cluster."""
    for name in _names():
        if processes.stop(name):
            print(f"{name} stopped")
    return 0


def status() -> int:
    """Which replicas run."""
    for name in _names():
        pid = processes.running(name)
        print(f"{name:<24} {'up (pid ' + str(pid) + ')' if pid else 'down'}")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    actions = {"up": up, "down": down, "status": status}
    if command not in actions:
        sys.exit("usage: python -m wastetrail.devstack.cluster up|down|status")
    sys.exit(actions[command]())
