"""Partitions, replication factor and min.insync.replicas are settings; a service binds the
configured host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from wastetrail_contracts.topics import EVENT_TOPICS
from wastetrail_runtime.settings import ServiceSettings
from wastetrail_runtime.topics import TopicLayout, catalog_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[2]


def test_layout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TopicLayout.from_settings(ServiceSettings()) == TopicLayout(0, 1, 1)  # one broker
    monkeypatch.setenv("WASTETRAIL_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("WASTETRAIL_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("WASTETRAIL_TOPIC_MIN_INSYNC_REPLICAS", "2")
    assert TopicLayout.from_settings() == TopicLayout(12, 3, 2)
    names = {name: parts for name, parts, _r in catalog_topics("p.", 12)}
    assert all(names[spec.qualified("p.")] == 12 for spec in EVENT_TOPICS.values())


def test_min_insync_above_replication_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds the replication factor"):
        TopicLayout(replication_factor=1, min_insync_replicas=2)


@pytest.mark.integration
async def test_topics_get_the_configured_partitions_and_min_insync(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    prefix = topic_prefix + "layout."
    layout = TopicLayout(partitions=6, replication_factor=1, min_insync_replicas=1)
    created = await ensure_topics(kafka_bootstrap, prefix=prefix, layout=layout)
    assert len(created) == len(catalog_topics(prefix))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topic = EVENT_TOPICS["billing"].qualified(prefix)
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 6
        assert all(len(p["replicas"]) == 1 for p in described[0]["partitions"])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
        assert entries["min.insync.replicas"] == "1"
    finally:
        await admin.close()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.integration
def test_serve_binds_the_configured_host(kafka_bootstrap: str, topic_prefix: str,
                                         tmp_path: Path) -> None:
    host = "127.0.0.2"  # loopback too, but not the 127.0.0.1 serve used to hard-code
    port = _free_port(host)
    env = dict(os.environ, WASTETRAIL_SERVICE="collection", WASTETRAIL_HTTP_HOST=host,
               WASTETRAIL_HTTP_PORT=str(port), WASTETRAIL_LOCAL_DIR=str(tmp_path),
               WASTETRAIL_KEYS_DIR=str(tmp_path / "keys"), WASTETRAIL_DATABASE_URL="",
               WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
               WASTETRAIL_TOPIC_PREFIX=topic_prefix + "serve.")
    proc = subprocess.Popen([sys.executable, "-m", "wastetrail.cli", "serve", "collection"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _answers(host, port):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "service did not listen"
            time.sleep(0.3)
        assert httpx.get(f"http://{host}:{port}/healthz", timeout=5).status_code == 200
        assert not _answers("127.0.0.1", port)  # bound to the configured host only
    finally:
        proc.terminate()
        proc.wait(timeout=30)
