"""Generate the committed contract artifacts from the models.

* ``contracts/schemas/<event_type>.v<version>.json``: a JSON Schema (draft 2020-12) per
  registered event payload, and ``envelope.json`` for the envelope;
* ``contracts/asyncapi.yaml``: an AsyncAPI 3.0 document with one channel per event topic of
  the catalog, one message per event type and version (the Kafka record value is the
  envelope, whose ``payload`` is the event), the producer's send operation and each
  consumer's receive operation.

``python -m wastetrail_contracts.schemagen`` rewrites them; ``--check`` exits 1 and lists
the stale files instead. Cross-field invariants (received = accepted + refused, ...) live in
the models' validators; JSON Schema cannot express them, so each schema's description says
where to look.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, JsonValue
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from wastetrail_contracts.base import Event
from wastetrail_contracts.chain import ChainHead, next_envelope
from wastetrail_contracts.codec import ALL_EVENTS, envelope_to_json, payload_json
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.envelope import SYSTEM_ACTOR, Actor, Envelope
from wastetrail_contracts.examples import T0, example_of
from wastetrail_contracts.integrity import chain_id
from wastetrail_contracts.topics import CONSUMERS, EVENT_TOPICS, publishes

# Bump together with contracts/pyproject.toml (a test checks they agree).
CONTRACTS_VERSION = "0.1.0"
DEFAULT_ROOT = Path(__file__).resolve().parents[2]
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
JsonObject = dict[str, JsonValue]


def schema_filename(cls: type[Event]) -> str:
    """``<event_type>.v<version>.json``."""
    return f"{cls.event_type}.v{cls.schema_version}.json"


def message_id(cls: type[Event]) -> str:
    """The AsyncAPI message id of an event type and version."""
    return f"{cls.event_type}.v{cls.schema_version}"


# Who typically records each service's events, for the example envelopes.
_EXAMPLE_ROLES = {
    "collection": Role.COLLECTOR,
    "transfer": Role.STATION_OPERATOR,
    "treatment": Role.PLANT_OPERATOR,
    "billing": Role.CASHIER,
}


def example_envelope(cls: type[Event]) -> JsonObject:
    """A complete, correctly hashed example envelope carrying the example of ``cls``."""
    event = example_of(cls)
    service = next(svc for svc in EVENT_TOPICS if publishes(svc, cls.event_type))
    index = ALL_EVENTS.index(cls) + 1
    actor = (
        SYSTEM_ACTOR
        if cls.event_type.startswith("integrity.")
        else Actor(kind=ActorKind.OPERATOR, id="op-anh", role=_EXAMPLE_ROLES[service])
    )
    envelope = next_envelope(
        ChainHead(chain_id(service, EVENT_TOPICS[service].name, 0)),
        event,
        service=service,
        stream_id="example-stream",
        stream_version=1,
        actor=actor,
        occurred_at=T0,
        recorded_at=T0,
        correlation_id="example-correlation",
        event_id=f"019cb0e8-a880-7000-8000-{index:012d}",
    )
    return envelope_to_json(envelope)


def _summary(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or model.__name__).strip()
    return doc.splitlines()[0]


def event_schema(cls: type[Event]) -> JsonObject:
    """The standalone JSON Schema of one event payload."""
    schema: JsonObject = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:wastetrail:event:{cls.event_type}:v{cls.schema_version}",
        "x-event-type": cls.event_type,
        "x-schema-version": cls.schema_version,
        "x-model": f"{cls.__module__}.{cls.__qualname__}",
    }
    schema.update(cls.model_json_schema(mode="validation"))
    schema["examples"] = [payload_json(example_of(cls))]
    schema["description"] = (
        f"{schema.get('description', '')}\n\nCross-field invariants are enforced by "
        f"{cls.__module__}.{cls.__qualname__}; this schema gives the field constraints."
    ).strip()
    return schema


def envelope_schema() -> JsonObject:
    """The standalone JSON Schema of the envelope."""
    schema: JsonObject = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": "urn:wastetrail:envelope",
    }
    schema.update(Envelope.model_json_schema(mode="validation"))
    return schema


def _component_schemas() -> dict[str, JsonValue]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (cls, "validation") for cls in ALL_EVENTS
    ]
    models.append((Envelope, "validation"))
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    defs = top.get("$defs", {})
    return {name: defs[name] for name in sorted(defs)}


def _message(cls: type[Event]) -> JsonObject:
    return {
        "name": cls.event_type,
        "title": cls.__name__,
        "summary": _summary(cls),
        "contentType": "application/json",
        "payload": {
            "description": (
                "The Kafka record value: an envelope (canonical JSON) whose payload is "
                f"{cls.__name__}."
            ),
            "allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": cls.event_type},
                        "schema_version": {"const": cls.schema_version},
                        "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
                    },
                },
            ],
        },
        "examples": [
            {"name": "example", "summary": "A realistic example", "payload": example_envelope(cls)}
        ],
        "correlationId": {
            "description": "Shared by every event caused by one command or request.",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The envelope's stream_id (all events of one aggregate "
                    "share a partition and keep their order).",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def asyncapi_document() -> JsonObject:
    """The AsyncAPI 3.0 document, as plain JSON data."""
    channels: JsonObject = {}
    operations: JsonObject = {}
    messages: JsonObject = {}
    for cls in ALL_EVENTS:
        messages[message_id(cls)] = _message(cls)
    for service, spec in EVENT_TOPICS.items():
        own = [cls for cls in ALL_EVENTS if publishes(service, cls.event_type)]
        channels[service] = {
            "address": spec.name,
            "title": f"{service} events",
            "description": (
                f"{spec.description} Written only by the {spec.producer} service. "
                f"Key: {spec.key}. Retention: "
                f"{'forever (the audit record)' if spec.retention_ms < 0 else spec.retention_ms}."
                " Each record's value is an envelope; the envelopes of one partition form "
                "one hash chain, signed by integrity.chain_checkpoint events."
            ),
            "messages": {
                message_id(cls): {"$ref": f"#/components/messages/{message_id(cls)}"}
                for cls in own
            },
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "topicConfiguration": {"retention.ms": spec.retention_ms},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"{service}.publish"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{service}"},
            "summary": f"The {service} service's outbox relay publishes its events.",
            "messages": [
                {"$ref": f"#/channels/{service}/messages/{message_id(cls)}"} for cls in own
            ],
        }
    for consumer_service, consumers in CONSUMERS.items():
        for name, source in consumers:
            operations[name] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{source}"},
                "summary": f"The {consumer_service} service's consumer {name}.",
                "description": (
                    f"Idempotent: (consumer, event_id) is recorded with the handler's "
                    f"changes; poison events go to the dead-letter topic wastetrail.dlq.{name}."
                ),
            }
    for service, spec in EVENT_TOPICS.items():
        if "audit" in spec.consumers:
            operations[f"audit.{service}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{service}"},
                "summary": "The auditors' tool replays and verifies the partition's chains.",
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "WasteTrail events",
            "version": CONTRACTS_VERSION,
            "description": (
                "Every event of WasteTrail's chain of custody, fees and EPR deposit-refund "
                "scheme. Generated by wastetrail_contracts.schemagen from the payload "
                "models; do not edit by hand."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local development broker (deploy/local/kafka.sh).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _component_schemas(), "messages": messages},
    }


def _json_text(data: JsonValue) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _yaml_text(data: JsonValue) -> str:
    # PyYAML is imported lazily: only the generator and its test need it.
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def render(root: Path = DEFAULT_ROOT) -> dict[Path, str]:
    """Every artifact's path and text."""
    schemas = root / "schemas"
    files = {schemas / schema_filename(cls): _json_text(event_schema(cls)) for cls in ALL_EVENTS}
    files[schemas / "envelope.json"] = _json_text(envelope_schema())
    files[root / "asyncapi.yaml"] = _yaml_text(asyncapi_document())
    return files


def stale(root: Path = DEFAULT_ROOT) -> list[str]:
    """What differs on disk: missing or outdated artifacts, and schemas of removed events."""
    expected = render(root)
    problems = [
        f"{path.relative_to(root)}: {'outdated' if path.exists() else 'missing'}"
        for path, text in expected.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    schemas = root / "schemas"
    if schemas.is_dir():
        problems.extend(
            f"{path.relative_to(root)}: no longer generated"
            for path in sorted(schemas.glob("*.json"))
            if path not in expected
        )
    return problems


def write(root: Path = DEFAULT_ROOT) -> list[Path]:
    """Rewrite every artifact (and remove schemas of removed events); the changed paths."""
    expected = render(root)
    changed: list[Path] = []
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for path in sorted((root / "schemas").glob("*.json")):
        if path not in expected:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the artifacts, or ``--check`` that they are up to date."""
    parser = argparse.ArgumentParser(prog="python -m wastetrail_contracts.schemagen")
    parser.add_argument("--check", action="store_true", help="exit 1 if any artifact is stale")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the contracts folder")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m wastetrail_contracts.schemagen", file=sys.stderr)
            return 1
        print("contract artifacts are up to date")
        return 0
    for path in write(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
