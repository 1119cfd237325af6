"""The compose file cannot run here (no Docker engine); check it against the code instead."""

from __future__ import annotations

from pathlib import Path

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
        env = COMPOSE["services"][name]["environment"]
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


def test_each_service_keeps_its_signing_key_in_a_volume_of_its_own() -> None:
    volumes = {name: COMPOSE["services"][name]["volumes"] for name in PORTS}
    assert volumes == {name: [f"{name}-keys:/data/keys"] for name in PORTS}
    assert {f"{name}-keys" for name in PORTS} <= set(COMPOSE["volumes"])


def test_databases_match_the_local_cluster() -> None:
    sql = (ROOT / "deploy/compose/init-databases.sql").read_text()
    script = (ROOT / "deploy/local/postgres.sh").read_text()
    for name in PORTS:
        assert f"wastetrail_{name}" in sql
        assert f"wastetrail_{name}" in script
