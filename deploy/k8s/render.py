"""Render the Kubernetes manifests of a WasteTrail deployment as plain YAML.

    uv run --frozen python deploy/k8s/render.py > deploy/k8s/wastetrail.yaml

Kafka runs under the Strimzi operator (``Kafka``, ``KafkaNodePool``, one ``KafkaTopic`` per
topic of the catalog in contracts/), each service's PostgreSQL under CloudNativePG
(``Cluster``), the four services as Deployments of one image with two replicas each.
Both operators must be installed first; secrets are referenced, never rendered:

- ``wastetrail-secrets``: ``jwt-secret``, ``vnpay-tmn-code``, ``vnpay-hash-secret``;
- ``wastetrail-<service>-signing-key``: ``<service>.key`` (the service's Ed25519 private key);
- ``<service>-db-app``: created by CloudNativePG (``username``, ``password``).

tests/foundation/test_k8s.py checks that the committed file is this script's output and
validates it (core resources against the Kubernetes schemas, the operators' resources
against their documented required fields).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from wastetrail_contracts.topics import CONSUMERS, DLQ_RETENTION_MS, all_topics
from wastetrail_runtime.consumer import retry_topic

from wastetrail.devstack.processes import PORTS, SERVICES

NAMESPACE = "wastetrail"
KAFKA = "wastetrail"
IMAGE = "wastetrail/services:0.1.0"
KAFKA_VERSION = "4.1.1"
BROKERS = 3
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
SERVICE_REPLICAS = 2
DB_INSTANCES = 2  # a primary and a synchronous standby
APP_USER = 10001  # the image's unprivileged user (deploy/compose/Dockerfile)

Resource = dict[str, Any]


def _meta(name: str, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if labels:
        meta["labels"] = labels
    return meta


def kafka() -> list[Resource]:
    """Three KRaft nodes (controller and broker), RF 3, min.insync.replicas 2."""
    pool = {
        "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaNodePool",
        "metadata": _meta("dual-role", **{"strimzi.io/cluster": KAFKA}),
        "spec": {
            "replicas": BROKERS, "roles": ["controller", "broker"],
            "storage": {"type": "jbod", "volumes": [
                {"id": 0, "type": "persistent-claim", "size": "200Gi", "deleteClaim": False,
                 "kraftMetadata": "shared"}]},
        },
    }
    cluster = {
        "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "Kafka",
        "metadata": {**_meta(KAFKA), "annotations": {"strimzi.io/node-pools": "enabled",
                                                     "strimzi.io/kraft": "enabled"}},
        "spec": {
            "kafka": {
                "version": KAFKA_VERSION,
                "listeners": [{"name": "plain", "port": 9092, "type": "internal",
                               "tls": False}],
                "config": {
                    "default.replication.factor": REPLICATION_FACTOR,
                    "min.insync.replicas": MIN_INSYNC_REPLICAS,
                    "offsets.topic.replication.factor": REPLICATION_FACTOR,
                    "transaction.state.log.replication.factor": REPLICATION_FACTOR,
                    "transaction.state.log.min.isr": MIN_INSYNC_REPLICAS,
                    "auto.create.topics.enable": False,
                    "log.retention.hours": -1,
                },
            },
            "entityOperator": {"topicOperator": {}},
        },
    }
    return [pool, cluster]


def topics() -> list[Resource]:
    """A KafkaTopic for every event, retry and dead-letter topic of the catalog."""
    wanted = [(spec.name, spec.partitions, spec.retention_ms) for spec in all_topics()]
    wanted += [(retry_topic(name), 1, DLQ_RETENTION_MS)
               for consumers in CONSUMERS.values() for name, _source in consumers]
    return [{
        "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
        "metadata": _meta(name.replace("_", "-").lower(), **{"strimzi.io/cluster": KAFKA}),
        "spec": {"topicName": name, "partitions": partitions, "replicas": REPLICATION_FACTOR,
                 "config": {"retention.ms": retention, "retention.bytes": -1,
                            "min.insync.replicas": MIN_INSYNC_REPLICAS}},
    } for name, partitions, retention in sorted(set(wanted))]


def database(service: str) -> Resource:
    """The service's own PostgreSQL cluster under CloudNativePG."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": _meta(f"{service}-db", app=service),
        "spec": {
            "instances": DB_INSTANCES,
            "minSyncReplicas": 1, "maxSyncReplicas": 1,
            "storage": {"size": "100Gi"},
            "bootstrap": {"initdb": {"database": f"wastetrail_{service}", "owner": "wastetrail"}},
        },
    }


def _env(service: str) -> list[dict[str, Any]]:
    def secret(name: str, key: str, var: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}

    env = [
        {"name": "WASTETRAIL_SERVICE", "value": service},
        {"name": "WASTETRAIL_HTTP_PORT", "value": str(PORTS[service])},
        secret(f"{service}-db-app", "username", "DB_USER"),
        secret(f"{service}-db-app", "password", "DB_PASSWORD"),
        {"name": "WASTETRAIL_DATABASE_URL",
         "value": f"postgresql+asyncpg://$(DB_USER):$(DB_PASSWORD)@{service}-db-rw:5432/"
                  f"wastetrail_{service}"},
        secret("wastetrail-secrets", "jwt-secret", "WASTETRAIL_JWT_SECRET"),
    ]
    if service == "billing":
        env += [secret("wastetrail-secrets", "vnpay-tmn-code", "WASTETRAIL_VNPAY_TMN_CODE"),
                secret("wastetrail-secrets", "vnpay-hash-secret", "WASTETRAIL_VNPAY_HASH_SECRET")]
    return env


def config() -> Resource:
    """Settings every service shares."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("wastetrail-config"),
        "data": {
            "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS": f"{KAFKA}-kafka-bootstrap:9092",
            "WASTETRAIL_HTTP_HOST": "0.0.0.0",  # inside the pod network
            "WASTETRAIL_TOPIC_REPLICATION_FACTOR": str(REPLICATION_FACTOR),
            "WASTETRAIL_TOPIC_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
            "WASTETRAIL_KEYS_DIR": "/data/keys",
            "WASTETRAIL_PUBLIC_KEYS_DIR": "/data/public-keys",
            "WASTETRAIL_LOCAL_DIR": "/data/local",
        },
    }


def service(name: str) -> list[Resource]:
    """Deployment (two replicas in one consumer group per consumer), Service and PDB."""
    port = PORTS[name]
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "wastetrail"}
    probe = {"httpGet": {"path": "/readyz", "port": port}, "periodSeconds": 5,
             "failureThreshold": 3}
    container = {
        "name": name, "image": IMAGE, "command": ["wastetrail", "serve", name],
        "ports": [{"name": "http", "containerPort": port}],
        "envFrom": [{"configMapRef": {"name": "wastetrail-config"}}],
        "env": _env(name),
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                      "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "signing-key", "mountPath": "/data/keys", "readOnly": True},
                         {"name": "public-keys", "mountPath": "/data/public-keys"},
                         {"name": "local", "mountPath": "/data/local"},
                         {"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 — an emptyDir,
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, **labels),
        "spec": {
            "replicas": SERVICE_REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {"prometheus.io/scrape": "true",
                                             "prometheus.io/port": str(port),
                                             "prometheus.io/path": "/metrics"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": APP_USER,
                                        "runAsGroup": APP_USER, "fsGroup": APP_USER,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        {"name": "signing-key",
                         "secret": {"secretName": f"wastetrail-{name}-signing-key",
                                    "defaultMode": 0o400}},
                        {"name": "public-keys", "emptyDir": {}},
                        {"name": "local", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": labels}}],
                },
            },
        },
    }
    svc = {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(name, **labels),
        "spec": {"selector": labels,
                 "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }
    pdb = {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(name),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
    }
    return [deployment, svc, pdb]


def manifests() -> list[Resource]:
    """Every resource of the deployment, in apply order."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    resources: list[Resource] = [namespace, *kafka(), *topics(), config()]
    for name in SERVICES:
        resources.append(database(name))
        resources.extend(service(name))
    return resources


def render() -> str:
    """The manifests as one multi-document YAML file."""
    header = "# Generated by deploy/k8s/render.py — edit that, then re-render.\n"
    return header + yaml.safe_dump_all(manifests(), sort_keys=False, default_flow_style=False)


if __name__ == "__main__":
    sys.stdout.write(render())
