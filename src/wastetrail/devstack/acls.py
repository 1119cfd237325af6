"""Topics and ACLs of a SASL broker (``WASTETRAIL_KAFKA_SASL=1 deploy/local/kafka.sh start``).

Run as the broker's super user (``admin``) right after it starts: creates the catalog's
topics, then grants each principal only what it needs —

* a service writes its own event topic and its consumers' dead-letter topics, reads the
  event topics it consumes and its own retry topics, and uses its own consumer groups;
* ``audit`` reads (and describes) every ``wastetrail.*`` topic, and writes nothing;
* ``operator`` (the ``dlq`` tool) reads dead letters and writes retry topics.

Every principal may describe the platform's topics (metadata only), so that a service's
start-up check finds them. Anything not granted is refused (``allow.everyone.if.no.acl.found
=false``); there is no anonymous listener.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import TopicAlreadyExistsError
from wastetrail_contracts.topics import CONSUMERS, event_topic, kafka_client_options
from wastetrail_runtime.topics import catalog_topics

Grant = tuple[str, ResourceType, str, ACLResourcePatternType, ACLOperation]
LITERAL, PREFIXED = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP


def grants(prefix: str = "") -> Iterator[Grant]:
    """(principal, resource type, name, pattern type, operation) of every ACL."""
    for service, consumers in CONSUMERS.items():
        yield service, TOPIC, event_topic(service, prefix), LITERAL, ACLOperation.WRITE
        yield service, TOPIC, f"{prefix}wastetrail.", PREFIXED, ACLOperation.DESCRIBE
        for consumer, source in consumers:
            yield service, TOPIC, event_topic(source, prefix), LITERAL, ACLOperation.READ
            yield service, TOPIC, f"{prefix}wastetrail.retry.{consumer}", LITERAL, \
                ACLOperation.READ
            yield service, TOPIC, f"{prefix}wastetrail.dlq.{consumer}", LITERAL, \
                ACLOperation.WRITE
            yield service, GROUP, f"{prefix}{consumer}", LITERAL, ACLOperation.READ
    yield "audit", TOPIC, f"{prefix}wastetrail.", PREFIXED, ACLOperation.READ
    yield "audit", TOPIC, f"{prefix}wastetrail.", PREFIXED, ACLOperation.DESCRIBE
    yield "operator", TOPIC, f"{prefix}wastetrail.dlq.", PREFIXED, ACLOperation.READ
    yield "operator", TOPIC, f"{prefix}wastetrail.retry.", PREFIXED, ACLOperation.WRITE
    yield "operator", TOPIC, f"{prefix}wastetrail.", PREFIXED, ACLOperation.DESCRIBE


def sasl_options(username: str, password: str) -> dict[str, str]:
    """The client options of a SCRAM-SHA-256 principal (kafka-python and aiokafka alike)."""
    return kafka_client_options({"WASTETRAIL_KAFKA_USERNAME": username,
                                 "WASTETRAIL_KAFKA_PASSWORD": password})


def apply(bootstrap: str, admin_password: str, prefix: str = "") -> int:
    """Create the catalog's topics and every ACL (idempotent); returns the ACLs sent."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **sasl_options("admin", admin_password))
    try:
        existing = set(admin.list_topics())
        topics = [NewTopic(name, partitions, 1, topic_configs={"retention.ms": str(retention)})
                  for name, partitions, retention in catalog_topics(prefix)
                  if name not in existing]
        if topics:
            try:
                admin.create_topics(topics)
            except TopicAlreadyExistsError:
                pass
        acls = [ACL(principal=f"User:{who}", host="*", operation=operation,
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePattern(kind, name, pattern))
                for who, kind, name, pattern, operation in grants(prefix)]
        admin.create_acls(acls)
        return len(acls)
    finally:
        admin.close()


def main() -> None:
    """``python -m wastetrail.devstack.acls --bootstrap HOST:PORT --credentials DIR``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--credentials", type=Path, required=True,
                        help="the directory of one password file per principal")
    parser.add_argument("--topic-prefix", default="")
    args = parser.parse_args()
    password = (args.credentials / "admin").read_text().strip()
    count = apply(args.bootstrap, password, args.topic_prefix)
    print(f"kafka: {count} ACLs in place (SASL/SCRAM, no anonymous access)")


if __name__ == "__main__":
    main()
