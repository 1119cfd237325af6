"""Trips, single scans, refusals and the read APIs, through the real service."""

from __future__ import annotations

import pytest
from collection_support import AUDITOR, Service, device_token, scan, seed, start_trip
from wastetrail_collection.domain.ids import generator_id_for, load_id_for
from wastetrail_contracts import parse_payload
from wastetrail_contracts.events.collection import TripClosed

pytestmark = pytest.mark.integration


async def test_trip_lifecycle_and_retries(service: Service) -> None:
    client = service.client
    await seed(client, vehicles=("veh-1", "veh-2"))
    started = await start_trip(client)
    assert (started["is_open"], started["device_id"], started["crew"]) == (
        True, "dev-1", ["Nguyễn Văn Tài"])
    body = {"trip_id": "trip-1", "vehicle_id": "veh-1", "crew": ["Nguyễn Văn Tài"],
            "commune": "phuong-hang-bac", "started_at": "2026-03-02T00:00:00Z"}
    again = await client.post("/v1/trips", headers=device_token(), json=body)
    assert again.status_code == 200  # an offline device re-syncing its trip start
    busy = await client.post("/v1/trips", headers=device_token("dev-2"),
                             json={**body, "trip_id": "trip-x"})
    assert (busy.status_code, busy.json()["type"].rsplit("/", 1)[1]) == (409, "vehicle-busy")
    switch = await client.post("/v1/trips", headers=device_token(),
                               json={**body, "trip_id": "trip-y", "vehicle_id": "veh-2"})
    assert (switch.status_code, switch.json()["type"].rsplit("/", 1)[1]) == (409, "device-busy")

    first = await client.post("/v1/loads", headers=device_token(), json=scan("k-1"))
    assert first.status_code == 201
    assert first.json()["id"] == load_id_for("dev-1", "k-1")
    retry = await client.post("/v1/loads", headers=device_token(), json=scan("k-1"))
    assert (retry.status_code, retry.json()["status"], retry.json()["id"]) == (
        200, "duplicate", first.json()["id"])

    close = {"declared_total_grams": 4_100, "closed_at": "2026-03-02T00:50:00Z"}
    closed = await client.post("/v1/trips/trip-1/close", headers=device_token(), json=close)
    assert closed.status_code == 200
    assert (closed.json()["is_open"], closed.json()["declared_total_grams"],
            closed.json()["scanned_total_grams"], closed.json()["load_count"]) == (
        False, 4_100, 4_000, 1)
    replay = await client.post("/v1/trips/trip-1/close", headers=device_token(), json=close)
    assert replay.status_code == 200
    other = await client.post("/v1/trips/trip-1/close", headers=device_token(),
                              json={**close, "declared_total_grams": 9})
    assert (other.status_code, other.json()["type"].rsplit("/", 1)[1]) == (409, "trip-closed")
    closings = [e for e in await service.rt.store.stream("trip-1")
                if isinstance(parse_payload(e), TripClosed)]
    assert len(closings) == 1

    # After the close, a late retry of an accepted scan is still a duplicate, not an error;
    # a new scan is refused.
    late = await client.post("/v1/loads", headers=device_token(), json=scan("k-1"))
    assert late.json()["status"] == "duplicate"
    new = await client.post("/v1/loads", headers=device_token(), json=scan("k-2"))
    assert new.json()["type"].endswith("/trip-closed")

    # The vehicle is free again, and the device may move to another vehicle.
    moved = await client.post("/v1/trips", headers=device_token(),
                              json={**body, "trip_id": "trip-2", "vehicle_id": "veh-2"})
    assert moved.status_code == 201, moved.text
    listed = (await client.get("/v1/trips", headers=AUDITOR, params={"is_open": True})).json()
    assert [t["trip_id"] for t in listed] == ["trip-2"]


async def test_reads_daily_totals_and_compliance(service: Service) -> None:
    client = service.client
    await seed(client, generators=3)
    # 23:00 in Hà Nội on 1 March; scans before and after local midnight.
    await start_trip(client, started_at="2026-03-01T16:00:00Z")
    scans = [
        scan("k-1", tag="QR-1", grams=3_000, at="2026-03-01T16:30:00Z"),           # 1 Mar local
        scan("k-2", tag="QR-1", grams=2_000, at="2026-03-01T17:30:00Z"),           # 2 Mar local
        scan("k-3", tag="QR-2", grams=1_500, at="2026-03-01T17:40:00Z", category="recyclable"),
        scan("k-4", tag="QR-2", grams=500, at="2026-03-01T17:45:00Z"),
        {**scan("k-5", tag="QR-3", at="2026-03-01T17:50:00Z"), "measure": "bag",
         "bag_size": "M", "grams": None},
    ]
    r = await client.post("/v1/loads/batch", headers=device_token(), json={"scans": scans})
    assert r.json()["accepted"] == 5, r.text
    for key, tag in (("r-1", "QR-1"), ("r-2", "QR-3"), ("r-3", "QR-3")):
        r = await client.post("/v1/refusals", headers=device_token(), json={
            "idempotency_key": key, "trip_id": "trip-1", "tag_id": tag, "reason": "unsorted",
            "refused_at": "2026-03-01T18:00:00Z"})
        assert r.status_code == 201, r.text
    dup = await client.post("/v1/refusals", headers=device_token(), json={
        "idempotency_key": "r-1", "trip_id": "trip-1", "tag_id": "QR-1", "reason": "unsorted",
        "refused_at": "2026-03-01T18:00:00Z"})
    assert dup.json()["status"] == "duplicate"

    trip = (await client.get("/v1/trips/trip-1", headers=AUDITOR)).json()
    assert [x["idempotency_key"] for x in trip["loads"]] == ["k-1", "k-2", "k-3", "k-4", "k-5"]
    assert trip["loads"][4]["grams"] == 5_000  # the configured weight of an M bag
    assert trip["scanned_total_grams"] == 3_000 + 2_000 + 1_500 + 500 + 5_000

    gen1 = generator_id_for("HN-0001")
    march1 = (await client.get(f"/v1/generators/{gen1}/loads", headers=AUDITOR,
                               params={"from": "2026-03-01", "to": "2026-03-01"})).json()
    assert (march1["count"], march1["total_grams"]) == (1, 3_000)
    both = (await client.get(f"/v1/generators/{gen1}/loads", headers=AUDITOR,
                             params={"from": "2026-03-01", "to": "2026-03-02", "limit": 1,
                                     "offset": 1})).json()
    assert (both["count"], both["total_grams"]) == (2, 5_000)
    assert [x["idempotency_key"] for x in both["loads"]] == ["k-2"]

    totals = (await client.get("/v1/communes/phuong-hang-bac/daily-totals", headers=AUDITOR,
                               params={"from": "2026-03-01", "to": "2026-03-02"})).json()
    assert totals["timezone"] == "Asia/Ho_Chi_Minh"
    assert [(t["day"], t["category"], t["grams"], t["loads"]) for t in totals["totals"]] == [
        ("2026-03-01", "food", 3_000, 1),
        ("2026-03-02", "food", 2_000 + 500 + 5_000, 3),
        ("2026-03-02", "recyclable", 1_500, 1),
    ]

    period = {"from": "2026-03-01", "to": "2026-03-02"}
    one = (await client.get(f"/v1/generators/{gen1}/compliance", headers=AUDITOR,
                            params=period)).json()
    assert (one["loads"], one["refusals"], one["refusal_rate"]) == (2, 1, pytest.approx(1 / 3))
    assert one["compliance_rate"] == pytest.approx(2 / 3)
    commune = (await client.get("/v1/communes/phuong-hang-bac/compliance", headers=AUDITOR,
                                params=period)).json()
    assert (commune["loads"], commune["refusals"], commune["refused_generators"]) == (5, 3, 2)
    assert commune["refusal_rate"] == pytest.approx(3 / 8)
    worst = commune["generators"][0]
    assert (worst["code"], worst["loads"], worst["refusals"], worst["refusal_rate"]) == (
        "HN-0003", 1, 2, pytest.approx(2 / 3))

    bad = await client.get("/v1/communes/phuong-hang-bac/daily-totals", headers=AUDITOR,
                           params={"from": "2026-03-02", "to": "2026-03-01"})
    assert (bad.status_code, bad.json()["field"]) == (422, "to")


async def test_refusals_single_and_batch(service: Service) -> None:
    client = service.client
    await seed(client, generators=2)
    await start_trip(client)
    bad_photo = await client.post("/v1/refusals", headers=device_token(), json={
        "idempotency_key": "r-0", "tag_id": "QR-1", "reason": "unsorted",
        "photo_sha256": "not-a-hash", "refused_at": "2026-03-02T00:10:00Z"})
    assert (bad_photo.status_code, bad_photo.json()["field"]) == (422, "photo_sha256")
    batch = await client.post("/v1/refusals/batch", headers=device_token(), json={"refusals": [
        {"idempotency_key": "r-1", "trip_id": "trip-1", "tag_id": "QR-1",
         "reason": "hazardous_mixed", "category": "other", "note": "pin lẫn trong rác",
         "refused_at": "2026-03-02T00:10:00Z"},
        {"idempotency_key": "r-2", "tag_id": "QR-2", "reason": "smelly",
         "refused_at": "2026-03-02T00:11:00Z"},
        {"idempotency_key": "r-3", "tag_id": "QR-404", "reason": "unsorted",
         "refused_at": "2026-03-02T00:12:00Z"},
        {"idempotency_key": "r-1", "trip_id": "trip-1", "tag_id": "QR-1",
         "reason": "hazardous_mixed", "refused_at": "2026-03-02T00:10:00Z"},
    ]})
    body = batch.json()
    assert [(r["status"], r["reason"], r["field"]) for r in body["results"]] == [
        ("accepted", None, None), ("rejected", "invalid", "reason"),
        ("rejected", "unknown-tag", "tag_id"), ("duplicate", None, None)]
    assert body["results"][3]["id"] == body["results"][0]["id"]
    refusals = [e for e in await service.rt.store.stream("trip-1")
                if e.type == "collection.load_refused"]
    assert len(refusals) == 1
    assert refusals[0].payload["note"] == "pin lẫn trong rác"
