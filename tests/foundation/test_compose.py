"""The compose file cannot run here (no Docker engine); check it against the code instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from wastetrail_runtime.settings import ServiceSettings

from wastetrail.devstack.processes import PORTS, service_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "deploy/compose/docker-compose.yml").read_text())
SETTINGS_ENV = {f"WASTETRAIL_{name.upper()}" for name in ServiceSettings.model_fields}


def test_every_service_is_there_with_its_port_and_a_health_check() -> None:
    services = COMPOSE["services"]
    assert {"kafka", "postgres", *PORTS} <= set(services)
    for name, port in PORTS.items():
        assert services[name]["ports"] == [f"{port}:{port}"]
        assert services[name]["environment"]["WASTETRAIL_HTTP_PORT"] == str(port)
        assert "readyz" in " ".join(services[name]["healthcheck"]["test"])
    assert services["kafka"]["image"].startswith("apache/kafka:4")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_service_environment_matches_the_settings_and_the_local_scripts() -> None:
    billing_only = {"WASTETRAIL_VNPAY_TMN_CODE", "WASTETRAIL_VNPAY_HASH_SECRET",
                    "WASTETRAIL_VNPAY_PAYMENT_URL", "WASTETRAIL_VNPAY_API_URL",
                    "WASTETRAIL_PUBLIC_URL"}
    for name in PORTS:
        env = render(REQUIRED_ENV)["services"][name]["environment"]
        keys = {k for k in env if k.startswith("WASTETRAIL_")}
        unknown = keys - SETTINGS_ENV - billing_only
        assert not unknown, f"{name}: not settings fields: {unknown}"
        local = {k for k in service_env(name) if k.startswith("WASTETRAIL_")}
        required = {"WASTETRAIL_SERVICE", "WASTETRAIL_DATABASE_URL",
                    "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS", "WASTETRAIL_HTTP_PORT"}
        assert required <= keys and required <= local
        assert env["WASTETRAIL_SERVICE"] == name
        assert env["WASTETRAIL_DATABASE_URL"].endswith(f"/wastetrail_{name}")
        assert env["WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_databases_match_the_local_cluster() -> None:
    sql = (ROOT / "deploy/compose/init-databases.sql").read_text()
    script = (ROOT / "deploy/local/postgres.sh").read_text()
    for name in PORTS:
        assert f"wastetrail_{name}" in sql
        assert f"wastetrail_{name}" in script


# --- a deployment, not a demo: rendered with the variables compose would substitute -------

VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")
REQUIRED_ENV = {"WASTETRAIL_JWT_SECRET": "s", "WASTETRAIL_VNPAY_TMN_CODE": "t",
                "WASTETRAIL_VNPAY_HASH_SECRET": "h"}


def _env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def render(env: dict[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose config` interpolates it (${X}, ${X:-d}, ${X:?m})."""
    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    text = (ROOT / "deploy/compose/docker-compose.yml").read_text()
    return dict(yaml.safe_load(VARIABLE.sub(substitute, text)))


def _brokers(config: dict[str, Any], profiles: set[str]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in config["services"].items()
            if str(svc.get("image", "")).startswith("apache/kafka")
            and set(svc.get("profiles", [])) <= profiles}


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_a_missing_secret_stops_the_deployment() -> None:
    with pytest.raises(KeyError, match="WASTETRAIL_JWT_SECRET"):
        render({})


def test_broker_data_lives_on_a_volume_and_operators_reach_it_from_the_host() -> None:
    config = render(REQUIRED_ENV)
    for name, broker in _brokers(config, {"cluster"}).items():
        env = broker["environment"]
        log_dir = env["KAFKA_LOG_DIRS"]
        assert not log_dir.startswith("/tmp"), name
        assert _volume_targets(broker)[log_dir] in config["volumes"], name
        listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
        advertised = dict(item.split("://") for item in
                          env["KAFKA_ADVERTISED_LISTENERS"].split(","))
        host, host_port = advertised["HOST"].split(":")
        assert host == "127.0.0.1"
        published = [p.split(":") for p in broker["ports"]]
        assert [["127.0.0.1", host_port, listeners["HOST"].lstrip(":")]] == published, name
        assert "HOST:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    # the host tools' default bootstrap (127.0.0.1:9092) is the single broker's HOST listener
    assert "HOST://127.0.0.1:9092" in config["services"]["kafka"]["environment"][
        "KAFKA_ADVERTISED_LISTENERS"]


def test_services_bind_every_interface_from_one_unprivileged_image() -> None:
    services = render(REQUIRED_ENV)["services"]
    images = {services[name]["image"] for name in PORTS}
    builds = {json.dumps(services[name]["build"], sort_keys=True) for name in PORTS}
    assert len(images) == 1 and len(builds) == 1
    for name in PORTS:
        assert services[name]["environment"]["WASTETRAIL_HTTP_HOST"] == "0.0.0.0"
    dockerfile = (ROOT / "deploy/compose/Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    ignored = {line.strip().rstrip("/") for line in
               (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".local", ".venv", ".git", "out"} <= ignored


def test_each_service_keeps_its_private_key_and_shares_only_public_keys() -> None:
    services = render(REQUIRED_ENV)["services"]
    private: dict[str, str] = {}
    for name in PORTS:
        env = services[name]["environment"]
        mounts = _volume_targets(services[name])
        private[name] = mounts[env["WASTETRAIL_KEYS_DIR"]]
        assert mounts[env["WASTETRAIL_PUBLIC_KEYS_DIR"]] == "public-keys"
    assert len(set(private.values())) == len(PORTS)  # one key volume per service
    for name, volume in private.items():
        others = [o for o in services if o != name
                  and volume in _volume_targets(services[o]).values()]
        assert not others, f"{name}'s private key volume is mounted in {others}"


def test_one_broker_by_default_three_with_rf3_and_isr2_in_the_cluster_profile() -> None:
    single = render(REQUIRED_ENV)
    assert list(_brokers(single, set())) == ["kafka"]
    assert str(single["services"]["collection"]["environment"][
        "WASTETRAIL_TOPIC_REPLICATION_FACTOR"]) == "1"
    cluster = render(REQUIRED_ENV | _env_file(ROOT / "deploy/compose/cluster.env"))
    brokers = _brokers(cluster, {"cluster"})
    assert len(brokers) == 3
    node_ids = {str(b["environment"]["KAFKA_NODE_ID"]) for b in brokers.values()}
    for broker in brokers.values():
        env = broker["environment"]
        voters = {v.split("@")[0] for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
        assert voters == node_ids
        assert str(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == "3"
        assert str(env["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
        assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "3"
    for name in PORTS:
        service = cluster["services"][name]
        env = service["environment"]
        assert str(env["WASTETRAIL_TOPIC_REPLICATION_FACTOR"]) == "3"
        assert str(env["WASTETRAIL_TOPIC_MIN_INSYNC_REPLICAS"]) == "2"
        assert len(env["WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS"].split(",")) == 3
        assert set(brokers) <= set(service["depends_on"])


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_engine(), reason="no Docker engine on this machine")
def test_compose_config_and_up_with_a_docker_engine(tmp_path: Path) -> None:
    """CI with Docker: compose accepts the file, builds the image, starts everything healthy."""
    compose = ["docker", "compose", "-p", f"wtci{os.getpid()}",
               "-f", str(ROOT / "deploy/compose/docker-compose.yml")]
    env = dict(os.environ, **REQUIRED_ENV)
    subprocess.run([*compose, "config", "--quiet"], env=env, check=True)
    try:
        subprocess.run([*compose, "up", "-d", "--build", "--wait", "--wait-timeout", "300"],
                       env=env, check=True)
        for port in PORTS.values():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
                assert r.status == 200
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, check=False)
