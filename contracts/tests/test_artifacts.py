"""The committed JSON Schemas and AsyncAPI document match the code, and are well formed."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from wastetrail_contracts import ALL_EVENTS, decode, parse_payload
from wastetrail_contracts.codec import payload_json
from wastetrail_contracts.examples import example_of
from wastetrail_contracts.integrity import verify_records
from wastetrail_contracts.schemagen import (
    CONTRACTS_VERSION,
    DEFAULT_ROOT,
    main,
    message_id,
    schema_filename,
    stale,
)
from wastetrail_contracts.topics import CONSUMERS, EVENT_TOPICS, PUBLISHES, publishes

ASYNCAPI = DEFAULT_ROOT / "asyncapi.yaml"


def test_committed_artifacts_are_up_to_date() -> None:
    problems = stale()
    assert problems == [], (
        "contract artifacts are stale; run "
        "`uv run python -m wastetrail_contracts.schemagen` and commit:\n" + "\n".join(problems)
    )


def test_check_mode_fails_on_stale_artifacts_and_write_mode_fixes_them(tmp_path: Path) -> None:
    root = tmp_path / "contracts"
    assert main(["--check", "--root", str(root)]) == 1  # nothing written yet

    assert main(["--root", str(root)]) == 0
    assert main(["--check", "--root", str(root)]) == 0

    schema = root / "schemas" / schema_filename(ALL_EVENTS[0])
    schema.write_text(schema.read_text().replace('"integer"', '"number"'))
    leftover = root / "schemas" / "collection.load_teleported.v1.json"
    leftover.write_text("{}")
    assert stale(root) == [
        f"schemas/{schema.name}: outdated",
        "schemas/collection.load_teleported.v1.json: no longer generated",
    ]
    assert main(["--check", "--root", str(root)]) == 1

    assert main(["--root", str(root)]) == 0
    assert stale(root) == []
    assert not leftover.exists()


def test_every_event_has_a_schema_file_with_a_valid_example() -> None:
    for cls in ALL_EVENTS:
        schema = json.loads((DEFAULT_ROOT / "schemas" / schema_filename(cls)).read_text())
        assert schema["x-event-type"] == cls.event_type
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert set(schema["properties"]) == set(cls.model_fields)
        assert cls.model_validate(schema["examples"][0]) == example_of(cls)


def test_envelope_schema_lists_every_envelope_field() -> None:
    schema = json.loads((DEFAULT_ROOT / "schemas" / "envelope.json").read_text())
    assert {"event_id", "hash", "prev_hash", "chain_seq", "payload"} <= set(schema["required"])


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_asyncapi_has_one_channel_per_event_topic(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    channels = asyncapi["channels"]
    assert {c["address"] for c in channels.values()} == {s.name for s in EVENT_TOPICS.values()}
    for service, spec in EVENT_TOPICS.items():
        kafka = channels[service]["bindings"]["kafka"]
        assert (kafka["partitions"], kafka["topicConfiguration"]["retention.ms"]) == (
            spec.partitions,
            spec.retention_ms,
        )


def test_asyncapi_has_every_message_with_its_payload_schema(asyncapi: dict[str, Any]) -> None:
    messages = asyncapi["components"]["messages"]
    assert set(messages) == {message_id(cls) for cls in ALL_EVENTS}
    for cls in ALL_EVENTS:
        message = messages[message_id(cls)]
        envelope_ref, event_part = message["payload"]["allOf"]
        assert envelope_ref == {"$ref": "#/components/schemas/Envelope"}
        assert event_part["properties"]["type"] == {"const": cls.event_type}
        payload_schema = _resolve(asyncapi, event_part["properties"]["payload"]["$ref"])
        assert set(payload_schema["properties"]) == set(cls.model_fields)


def test_asyncapi_examples_are_real_verifiable_envelopes(asyncapi: dict[str, Any]) -> None:
    for cls in ALL_EVENTS:
        example = asyncapi["components"]["messages"][message_id(cls)]["examples"][0]["payload"]
        data = json.dumps(example).encode()
        assert parse_payload(decode(data)) == example_of(cls)
        failures = verify_records([data], {})
        # Only the example checkpoint's made-up signature key is unknown.
        assert [f.kind for f in failures] == (
            ["unknown_key"] if cls.event_type == "integrity.chain_checkpoint" else []
        )
        assert example["payload"] == payload_json(example_of(cls))


def test_every_ref_in_the_asyncapi_document_resolves(asyncapi: dict[str, Any]) -> None:
    refs = _refs(asyncapi)
    assert len(refs) > 100
    for ref in refs:
        assert ref.startswith("#/"), ref
        _resolve(asyncapi, ref)  # raises KeyError if dangling


def test_asyncapi_operations_cover_producers_and_consumers(asyncapi: dict[str, Any]) -> None:
    operations = asyncapi["operations"]
    for service in EVENT_TOPICS:
        assert operations[f"{service}.publish"]["action"] == "send"
    for consumers in CONSUMERS.values():
        for name, source in consumers:
            assert operations[name] == {
                **operations[name],
                "action": "receive",
                "channel": {"$ref": f"#/channels/{source}"},
            }


def test_every_event_type_is_published_by_some_service() -> None:
    for cls in ALL_EVENTS:
        assert any(publishes(service, cls.event_type) for service in PUBLISHES), cls.event_type
    for service, patterns in PUBLISHES.items():
        for pattern in patterns:
            prefix = pattern.removesuffix("*")
            assert any(
                cls.event_type == pattern or cls.event_type.startswith(prefix)
                for cls in ALL_EVENTS
            ), f"{service}: {pattern} matches no event"


def test_generator_version_matches_the_package_version() -> None:
    assert importlib.metadata.version("wastetrail-contracts") == CONTRACTS_VERSION


def test_generator_writes_into_any_root(tmp_path: Path) -> None:
    # The stale check compares against the package's own folder; a copy behaves the same.
    copy = tmp_path / "copy"
    shutil.copytree(DEFAULT_ROOT / "schemas", copy / "schemas")
    shutil.copy(ASYNCAPI, copy / "asyncapi.yaml")
    assert stale(copy) == []
