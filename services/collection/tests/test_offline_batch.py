"""Offline batches: each scan judged on its own; a retried scan is a duplicate, never a
second event."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from collection_support import (
    NOW,
    Service,
    device_token,
    published,
    read_topic,
    scan,
    seed,
    start_trip,
)
from wastetrail_contracts.events.collection import LoadCollected

pytestmark = pytest.mark.integration


def _at(i: int) -> str:
    return (NOW - timedelta(minutes=59) + timedelta(seconds=7 * i)).isoformat()


def offline_batch() -> tuple[list[dict[str, object]], dict[int, tuple[str, str]]]:
    """485 good scans, 10 re-sent ones, 5 broken ones (index → expected reason, field)."""
    scans: list[dict[str, object]] = [
        scan(f"b-{i:03d}", tag=f"QR-{1 + i % 20}", grams=1_000 + i, at=_at(i)) for i in range(485)
    ]
    broken = {
        "unknown-tag": ("grams", scan("x-1", tag="QR-404", at=_at(1))),
        "weight-not-positive": ("grams", scan("x-2", grams=0, at=_at(2))),
        "time-in-future": ("collected_at", scan("x-3", at=(NOW + timedelta(hours=1)).isoformat())),
        "gps-outside-province": ("latitude", scan("x-4", at=_at(4), latitude=35.68)),
        "invalid": ("grams", scan("x-5", at=_at(5), grams="heavy")),
    }
    expected: dict[int, tuple[str, str]] = {}
    # Interleave: a device re-sends what it was not sure went through, anywhere in the batch.
    for n, (reason, (field, body)) in enumerate(broken.items()):
        expected[len(scans)] = (reason, "tag_id" if reason == "unknown-tag" else field)
        scans.append(body)
        for k in range(2):
            scans.append(dict(scans[n * 40 + k * 7]))  # a duplicate of an earlier scan
    assert len(scans) == 500
    return scans, expected


async def test_500_scans_10_duplicates_5_invalid_make_485_events(
    service: Service, kafka_bootstrap: str
) -> None:
    client = service.client
    await seed(client, generators=20)
    await start_trip(client, started_at=(NOW - timedelta(hours=1)).isoformat())
    scans, broken = offline_batch()

    response = await client.post("/v1/loads/batch", headers=device_token(),
                                 json={"scans": scans})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (485, 10, 5)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(500))
    failed = {r["index"]: (r["reason"], r["field"]) for r in results if r["status"] != "accepted"
              and r["status"] != "duplicate"}
    assert failed == broken
    assert all(r["detail"] for r in results if r["status"] == "rejected")
    first_id = {r["idempotency_key"]: r["id"] for r in results if r["status"] == "accepted"}
    duplicates = [r for r in results if r["status"] == "duplicate"]
    assert len(duplicates) == 10
    for r in duplicates:  # the duplicate names the load its first copy made
        assert r["id"] == first_id[r["idempotency_key"]]

    # The device never got the answer and sends everything again.
    again = (await client.post("/v1/loads/batch", headers=device_token(),
                               json={"scans": scans})).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 495, 5)
    for r in again["results"]:
        if r["status"] == "duplicate":
            assert r["id"] == first_id[r["idempotency_key"]]

    await published(service)
    loads = [e for _, _, _, e in await read_topic(kafka_bootstrap, service.topic)
             if isinstance(e, LoadCollected)]
    assert len(loads) == 485
    assert {e.load_id for e in loads} == set(first_id.values())
    assert {e.idempotency_key for e in loads} == {f"b-{i:03d}" for i in range(485)}

    trip = (await client.get("/v1/trips/trip-1", headers=device_token(),
                             params={"limit": 1000})).json()
    assert trip["load_count"] == 485
    assert trip["scanned_total_grams"] == sum(1_000 + i for i in range(485))
    assert len(trip["loads"]) == 485


async def test_a_batch_above_the_limit_is_refused_whole(make_service: object) -> None:
    service: Service = await make_service(max_batch_scans=3)  # type: ignore[operator]
    await seed(service.client)
    await start_trip(service.client)
    scans = [scan(f"k-{i}") for i in range(4)]
    r = await service.client.post("/v1/loads/batch", headers=device_token(),
                                  json={"scans": scans})
    assert r.status_code == 413
    assert r.json()["field"] == "scans"


async def test_a_retry_racing_its_first_attempt_records_the_scans_once(
    service: Service,
) -> None:
    # A phone retries while its first request is still being written.
    client = service.client
    await seed(client, generators=20)
    await start_trip(client)
    scans = [scan(f"c-{i}", tag=f"QR-{1 + i % 20}", at=_at(i)) for i in range(150)]
    first, second = await asyncio.gather(*(
        client.post("/v1/loads/batch", headers=device_token(), json={"scans": scans})
        for _ in range(2)))
    a, b = first.json(), second.json()
    assert sorted([a["accepted"], b["accepted"]]) == [0, 150], (a, b)
    assert a["duplicates"] + b["duplicates"] == 150
    events = [e for e in await service.rt.store.stream("trip-1")
              if e.type == LoadCollected.event_type]
    assert len(events) == 150
    trip = (await client.get("/v1/trips/trip-1", headers=device_token())).json()
    assert trip["load_count"] == 150


async def test_a_year_one_time_or_a_nul_rejects_its_item_not_the_batch(service: Service) -> None:
    # datetime.astimezone overflows on year 1 and PostgreSQL cannot store NUL: before the
    # bounds, one such item failed the whole batch, and the device re-sent it forever.
    client = service.client
    await seed(client)
    await start_trip(client)
    year_one = "0001-01-01T00:00:00+07:00"
    scans = await client.post("/v1/loads/batch", headers=device_token(), json={"scans": [
        scan("y-1", at=year_one), scan("ok-1", at=_at(1)), scan("y-2", at="9999-12-31T23:59:59Z"),
    ]})
    assert scans.status_code == 200, scans.text
    assert [(r["status"], r["field"]) for r in scans.json()["results"]] == [
        ("rejected", "collected_at"), ("accepted", None), ("rejected", "collected_at")]
    refusal = {"idempotency_key": "r-1", "tag_id": "QR-1", "reason": "unsorted",
               "refused_at": _at(3)}
    refusals = await client.post("/v1/refusals/batch", headers=device_token(), json={
        "refusals": [refusal | {"note": "nul\x00"}, refusal | {"idempotency_key": "r-2"},
                     refusal | {"idempotency_key": "r-3", "refused_at": year_one}]})
    assert refusals.status_code == 200, refusals.text
    assert [(r["status"], r["field"]) for r in refusals.json()["results"]] == [
        ("rejected", "note"), ("accepted", None), ("rejected", "refused_at")]
