"""Broker access control on a SASL/SCRAM broker with the project's ACLs (deploy/local/kafka.sh
with WASTETRAIL_KAFKA_SASL=1, ACLs from wastetrail.devstack.acls): each service writes only
its own topic, the auditor only reads, anonymous clients get nothing.

Runs on the broker WASTETRAIL_SASL_BOOTSTRAP (host:port) and WASTETRAIL_KAFKA_CREDENTIALS
(one password file per principal) name, on the local broker when it runs with SASL, or on
a throwaway SASL broker it starts itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from wastetrail_contracts.topics import event_topic

from wastetrail.devstack import acls
from wastetrail.devstack.acls import sasl_options
from wastetrail.devstack.infra import KAFKA_BOOTSTRAP, kafka_credentials

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
_BROKER: dict[str, object] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A SASL broker with the project's ACLs: the one WASTETRAIL_SASL_BOOTSTRAP and
    WASTETRAIL_KAFKA_CREDENTIALS name, the local broker when it runs with SASL, or else a
    throwaway one this module starts with deploy/local/kafka.sh (WASTETRAIL_KAFKA_SASL=1,
    free ports, a temporary log directory), so the check runs everywhere."""
    given, local = os.environ.get("WASTETRAIL_SASL_BOOTSTRAP"), kafka_credentials()
    if given:
        _BROKER.update(bootstrap=given,
                       credentials=Path(os.environ["WASTETRAIL_KAFKA_CREDENTIALS"]))
        yield
        return
    if local is not None:
        _BROKER.update(bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", KAFKA_BOOTSTRAP),
                       credentials=local)
        yield
        return
    state = tmp_path_factory.mktemp("sasl-broker")
    port, controller = _free_port(), _free_port()
    env = {**os.environ, "WASTETRAIL_LOCAL_DIR": str(state), "WASTETRAIL_KAFKA_SASL": "1",
           "WASTETRAIL_KAFKA_PORT": str(port), "WASTETRAIL_KAFKA_CONTROLLER_PORT": str(controller)}
    script = str(ROOT / "deploy" / "local" / "kafka.sh")
    subprocess.run(["bash", script, "start"], env=env, check=True, timeout=180,
                   capture_output=True)
    try:
        bootstrap, credentials = f"127.0.0.1:{port}", state / "kafka-credentials"
        acls.apply(bootstrap, (credentials / "admin").read_text().strip())
        _BROKER.update(bootstrap=bootstrap, credentials=credentials)
        yield
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False, timeout=120,
                       capture_output=True)


def _bootstrap() -> str:
    return str(_BROKER["bootstrap"])


def auth(principal: str) -> dict[str, str]:
    credentials = _BROKER["credentials"]
    assert isinstance(credentials, Path)
    return sasl_options(principal, (credentials / principal).read_text().strip())


def produce(principal: str, topic: str) -> None:
    # Not idempotent: a principal with no write grant at all is otherwise refused one step
    # earlier (ClusterAuthorizationFailed on InitProducerId), less clearly named.
    producer = KafkaProducer(bootstrap_servers=_bootstrap(), acks="all", max_block_ms=10_000,
                             enable_idempotence=False, **auth(principal))
    try:
        producer.send(topic, key=b"LK-forged", value=b'{"forged": true}').get(timeout=15)
    finally:
        producer.close(timeout=5)


def test_a_service_may_write_its_own_topic() -> None:
    produce("collection", event_topic("collection"))


def test_another_services_credentials_cannot_write_collections_topic() -> None:
    for principal in ("transfer", "billing", "audit"):
        with pytest.raises(TopicAuthorizationFailedError):
            produce(principal, event_topic("collection"))


def test_the_auditor_reads_every_event_topic() -> None:
    consumer = KafkaConsumer(bootstrap_servers=_bootstrap(), group_id=None,
                             enable_auto_commit=False, **auth("audit"))
    try:
        tp = TopicPartition(event_topic("collection"), 0)
        consumer.assign([tp])
        assert consumer.end_offsets([tp])[tp] >= 0
        assert consumer.partitions_for_topic(event_topic("billing")) == {0, 1, 2, 3}
    finally:
        consumer.close()


def test_a_service_cannot_read_a_topic_it_does_not_consume() -> None:
    consumer = KafkaConsumer(bootstrap_servers=_bootstrap(), group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=3000,
                             **auth("collection"))

    def read_billing() -> None:
        consumer.assign([TopicPartition(event_topic("billing"), 0)])
        for _ in range(3):
            consumer.poll(timeout_ms=3000)

    try:
        with pytest.raises(TopicAuthorizationFailedError):
            read_billing()
    finally:
        consumer.close()


def _anonymous_produce() -> None:
    producer = KafkaProducer(bootstrap_servers=_bootstrap(), max_block_ms=5_000,
                             request_timeout_ms=5_000)
    try:
        producer.send(event_topic("collection"), value=b"x").get(timeout=10)
    finally:
        producer.close(timeout=2)


def _anonymous_read() -> None:
    consumer = KafkaConsumer(bootstrap_servers=_bootstrap(), group_id=None,
                             request_timeout_ms=5_000, api_version_auto_timeout_ms=5_000)
    try:
        tp = TopicPartition(event_topic("collection"), 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        consumer.poll(timeout_ms=3000)
        raise AssertionError("an anonymous client was served")
    finally:
        consumer.close()


def test_an_anonymous_client_can_neither_produce_nor_read() -> None:
    with pytest.raises(KafkaError):
        _anonymous_produce()
    with pytest.raises(KafkaError):
        _anonymous_read()
