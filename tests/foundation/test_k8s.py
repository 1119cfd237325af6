"""The Kubernetes manifests (deploy/k8s/wastetrail.yaml), validated offline: core resources
against the Kubernetes JSON schemas (kubernetes-validate, strict), the Strimzi and
CloudNativePG resources against the required fields their CRDs document."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from wastetrail_contracts.topics import CONSUMERS, dead_letter_topic
from wastetrail_runtime.topics import catalog_topics

from wastetrail.devstack.processes import PORTS

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy/k8s/wastetrail.yaml"
DOCS = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
CORE = {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
K8S_VERSION = "1.30.0"


def _load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_render", ROOT / "deploy/k8s/render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _of(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCS if d["kind"] == kind]


def test_the_committed_manifests_are_the_renderers_output() -> None:
    assert MANIFEST.read_text() == _load_renderer().render(), \
        "re-render: uv run --frozen python deploy/k8s/render.py > deploy/k8s/wastetrail.yaml"


@pytest.mark.parametrize("doc", [d for d in DOCS if d["kind"] in CORE],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_core_resources_match_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_core_resource_is_refused() -> None:
    (deployment, *_) = _of("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_strimzi_kafka_is_kraft_with_three_nodes_rf3_and_isr2() -> None:
    (kafka,) = _of("Kafka")
    (pool,) = _of("KafkaNodePool")
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled",
                                                "strimzi.io/kraft": "enabled"}
    # KafkaSpec requires kafka; KafkaClusterSpec requires listeners; a listener requires
    # name, port, type and tls.
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert listeners and all({"name", "port", "type", "tls"} <= set(li) for li in listeners)
    assert all(li["type"] in {"internal", "route", "loadbalancer", "nodeport", "ingress",
                              "cluster-ip"} for li in listeners)
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    # KafkaNodePool requires replicas, roles and storage (with its type); the pool belongs
    # to the cluster by the strimzi.io/cluster label.
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    spec = pool["spec"]
    assert spec["replicas"] == 3 and set(spec["roles"]) == {"controller", "broker"}
    assert spec["storage"]["type"] in {"ephemeral", "persistent-claim", "jbod"}
    assert all(v["type"] in {"ephemeral", "persistent-claim"} and "size" in v
               for v in spec["storage"]["volumes"])
    assert "topicOperator" in kafka["spec"]["entityOperator"]


def test_every_topic_the_services_use_is_a_kafka_topic_with_rf3_isr2() -> None:
    (kafka,) = _of("Kafka")
    declared = {t["spec"]["topicName"]: t for t in _of("KafkaTopic")}
    needed = {name: parts for name, parts, _r in catalog_topics()}
    needed |= {dead_letter_topic(c): 1 for cs in CONSUMERS.values() for c, _s in cs}
    assert set(needed) <= set(declared)
    for name, partitions in needed.items():
        topic = declared[name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] >= partitions
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
    names = [t["metadata"]["name"] for t in _of("KafkaTopic")]
    assert len(set(names)) == len(names)
    assert all(n == n.lower() and len(n) <= 253 for n in names)


def test_each_service_has_two_replicas_its_own_cnpg_database_and_non_root_pods() -> None:
    deployments = {d["metadata"]["name"]: d for d in _of("Deployment")}
    databases = {c["metadata"]["name"]: c for c in _of("Cluster")}
    (config,) = _of("ConfigMap")
    assert config["data"]["WASTETRAIL_TOPIC_REPLICATION_FACTOR"] == "3"
    assert config["data"]["WASTETRAIL_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    assert set(deployments) == set(PORTS)
    for name, port in PORTS.items():
        deployment = deployments[name]
        assert deployment["spec"]["replicas"] == 2
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["command"] == ["wastetrail", "serve", name]
        env = {e["name"]: e for e in container["env"]}
        assert env["WASTETRAIL_HTTP_PORT"]["value"] == str(port)
        url = env["WASTETRAIL_DATABASE_URL"]["value"]
        # CloudNativePG: Cluster requires instances; its read-write service is <name>-rw,
        # its app secret <name>-db-app holds username and password.
        db = databases[f"{name}-db"]
        assert db["apiVersion"] == "postgresql.cnpg.io/v1" and db["spec"]["instances"] >= 1
        assert db["spec"]["storage"]["size"]
        database = db["spec"]["bootstrap"]["initdb"]["database"]
        assert url.startswith("postgresql+asyncpg://")
        assert url.endswith(f"@{name}-db-rw:5432/{database}")
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{name}-db-app"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["signing-key"]["secret"]["secretName"] == f"wastetrail-{name}-signing-key"
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"]
              for d in deployments.values()}
    assert len(images) == 1
