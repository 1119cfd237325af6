"""Broker access control on a SASL/SCRAM broker with the project's ACLs (deploy/local/kafka.sh
with WASTETRAIL_KAFKA_SASL=1, ACLs from wastetrail.devstack.acls): each service writes only
its own topic, the auditor only reads, anonymous clients get nothing.

Runs on the local broker when it runs with SASL, or on the broker WASTETRAIL_SASL_BOOTSTRAP
(host:port) and WASTETRAIL_KAFKA_CREDENTIALS (one password file per principal) name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from wastetrail_contracts.topics import event_topic

from wastetrail.devstack.acls import sasl_options
from wastetrail.devstack.infra import KAFKA_BOOTSTRAP, kafka_credentials

# The local broker when it runs with SASL (kafka.sh's default for a new log directory), or
# the broker these variables name.
_LOCAL = kafka_credentials()
BOOTSTRAP = os.environ.get("WASTETRAIL_SASL_BOOTSTRAP") or (
    os.environ.get("KAFKA_BOOTSTRAP_SERVERS", KAFKA_BOOTSTRAP) if _LOCAL else "")
CREDENTIALS = Path(os.environ.get("WASTETRAIL_KAFKA_CREDENTIALS") or _LOCAL or "/nonexistent")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not BOOTSTRAP or not CREDENTIALS.is_dir(),
                       reason="no SASL broker (WASTETRAIL_SASL_BOOTSTRAP, "
                              "WASTETRAIL_KAFKA_CREDENTIALS)"),
]


def auth(principal: str) -> dict[str, str]:
    return sasl_options(principal, (CREDENTIALS / principal).read_text().strip())


def produce(principal: str, topic: str) -> None:
    # Not idempotent: a principal with no write grant at all is otherwise refused one step
    # earlier (ClusterAuthorizationFailed on InitProducerId), less clearly named.
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", max_block_ms=10_000,
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
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
                             enable_auto_commit=False, **auth("audit"))
    try:
        tp = TopicPartition(event_topic("collection"), 0)
        consumer.assign([tp])
        assert consumer.end_offsets([tp])[tp] >= 0
        assert consumer.partitions_for_topic(event_topic("billing")) == {0, 1, 2, 3}
    finally:
        consumer.close()


def test_a_service_cannot_read_a_topic_it_does_not_consume() -> None:
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
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
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, max_block_ms=5_000,
                             request_timeout_ms=5_000)
    try:
        producer.send(event_topic("collection"), value=b"x").get(timeout=10)
    finally:
        producer.close(timeout=2)


def _anonymous_read() -> None:
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
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
