"""HTTP → PostgreSQL → outbox → Kafka: the events on the real topic, checked against the
contracts and the hash chain."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from collection_support import (
    ADMIN,
    Service,
    device_token,
    published,
    read_topic,
    scan,
    seed,
    start_trip,
)
from wastetrail_collection.domain.ids import generator_id_for
from wastetrail_contracts.codec import envelope_to_json
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.events.collection import (
    GeneratorRegistered,
    LoadCollected,
    LoadRefused,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.integrity import ChainCheckpoint
from wastetrail_contracts.integrity import verify_records
from wastetrail_contracts.keys import load_public_keys

pytestmark = pytest.mark.integration


async def test_a_collection_day_reaches_kafka_as_contract_events(
    service: Service, kafka_bootstrap: str
) -> None:
    client = service.client
    await seed(client, generators=3)
    await start_trip(client)
    single = await client.post("/v1/loads", headers=device_token(), json=scan("k-1"))
    assert single.status_code == 201, single.text
    batch = await client.post("/v1/loads/batch", headers=device_token(), json={"scans": [
        scan("k-2", tag="QR-2", grams=2_500, at="2026-03-02T00:35:00Z"),
        scan("k-3", tag="QR-3", grams=6_000, at="2026-03-02T00:40:00Z", category="recyclable"),
    ]})
    assert batch.json()["accepted"] == 2, batch.text
    refusal = await client.post("/v1/refusals", headers=device_token(), json={
        "idempotency_key": "r-1", "trip_id": "trip-1", "tag_id": "QR-3", "reason": "unsorted",
        "photo_sha256": "ab" * 32, "refused_at": "2026-03-02T00:41:00Z"})
    assert refusal.status_code == 201, refusal.text
    closed = await client.post("/v1/trips/trip-1/close", headers=device_token(),
                               json={"declared_total_grams": 12_000,
                                     "closed_at": "2026-03-02T00:55:00Z"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["scanned_total_grams"] == 12_500

    await published(service)
    records = await read_topic(kafka_bootstrap, service.topic)
    # Signed checkpoints of the hash chains may be interleaved; they are the runtime's.
    kinds = Counter(type(event).__name__ for _, _, _, event in records
                    if not isinstance(event, ChainCheckpoint))
    assert kinds == {"CollectorRegistered": 1, "VehicleRegistered": 1, "DeviceRegistered": 1,
                     "GeneratorRegistered": 3, "TripStarted": 1, "LoadCollected": 3,
                     "LoadRefused": 1, "TripClosed": 1}

    loads = {e.load_id: e for _, _, _, e in records if isinstance(e, LoadCollected)}
    assert set(loads) == {single.json()["id"], *(r["id"] for r in batch.json()["results"])}
    first = loads[single.json()["id"]]
    assert (first.generator_id, first.trip_id, first.grams, first.vehicle_id, first.device_id,
            first.commune) == (generator_id_for("HN-0001"), "trip-1", 4_000, "veh-1", "dev-1",
                               "phuong-hang-bac")
    generators = [e for _, _, _, e in records if isinstance(e, GeneratorRegistered)]
    assert {g.name for g in generators} == {"Hộ Nguyễn Văn 1", "Hộ Nguyễn Văn 2",
                                            "Hộ Nguyễn Văn 3"}
    vehicle = next(e for _, _, _, e in records if isinstance(e, VehicleRegistered))
    assert (vehicle.capacity_grams, vehicle.registered_tare_grams) == (2_000_000, 3_500_000)

    # A trip's events share one stream, so one partition, in order: started, loads, closed.
    trip_records = sorted((p, o, type(e).__name__) for p, o, env, e in records
                          if env.stream_id == "trip-1")
    assert len({p for p, _, _ in trip_records}) == 1
    names = [name for _, _, name in trip_records]
    assert names[0] == TripStarted.__name__
    assert names[-1] == TripClosed.__name__
    assert sorted(names[1:-1]) == ["LoadCollected"] * 3 + ["LoadRefused"]
    versions = [env.stream_version for _, _, env, _ in sorted(
        ((p, o, env, e) for p, o, env, e in records if env.stream_id == "trip-1"),
        key=lambda r: r[1])]
    assert versions == list(range(1, 7))

    # Device events carry the device as actor; registry events the admin operator.
    for _, _, env, event in records:
        if isinstance(event, LoadCollected | LoadRefused | TripStarted | TripClosed):
            assert (env.actor.kind, env.actor.id, env.actor.role) == (
                ActorKind.DEVICE, "dev-1", Role.COLLECTOR)
        elif not isinstance(event, ChainCheckpoint):
            assert (env.actor.kind, env.actor.id, env.actor.role) == (
                ActorKind.OPERATOR, "admin-1", Role.ADMIN)
    refused = next(e for _, _, _, e in records if isinstance(e, LoadRefused))
    assert (refused.reason.value, refused.photo_sha256, refused.generator_id) == (
        "unsorted", "ab" * 32, generator_id_for("HN-0003"))

    # Every partition's records form an unbroken hash chain.
    by_partition: dict[int, list[tuple[int, dict[str, object]]]] = defaultdict(list)
    for partition, offset, env, _ in records:
        by_partition[partition].append((offset, envelope_to_json(env)))
    keys = load_public_keys(service.settings.keys_dir)
    for partition, items in by_partition.items():
        failures = verify_records([raw for _, raw in sorted(items, key=lambda i: i[0])], keys)
        assert failures == [], (partition, failures)

    trip = await client.get("/v1/trips/trip-1", headers=ADMIN)
    assert [x["load_id"] for x in trip.json()["loads"]] == list(loads)
