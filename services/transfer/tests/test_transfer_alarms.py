"""Custody alarms on a controllable clock: raised when overdue, cleared by the late fact."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from wastetrail_transfer.app import SPEC, alarm_loop, sweep_alarms

pytestmark = pytest.mark.integration

STATION = {"station_id": "S1", "name": "Trạm Phường 1", "commune": "PHUONG-1",
           "capacity_grams": 200_000_000, "categories": ["food", "other"]}


async def open_alerts(t: Any, kind: str) -> list[dict[str, Any]]:
    response = await t.client.get("/v1/alerts", params={"kind": kind}, headers=t.auth())
    return list(response.json()["items"])


async def test_load_not_received_fires_after_the_delay_and_clears_on_weighing(
        transfer: Any, ev: Any) -> None:
    t = transfer
    start = t.clock.now()
    await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    await t.feed(ev.started("T1", at=start), ev.load("T1", "L1", 500_000, at=start),
                 ev.closed("T1", 1, 500_000, at=start + timedelta(hours=1)))

    t.clock.set(start + timedelta(hours=1, minutes=59))  # 59 min after the close
    assert await sweep_alarms(t.rt) == 0
    t.clock.set(start + timedelta(hours=2))  # 60 min after the close: overdue
    assert await sweep_alarms(t.rt) == 1
    assert await sweep_alarms(t.rt) == 0  # raised once, not on every sweep

    [alert] = await open_alerts(t, "load_not_received")
    assert (alert["subject_id"], alert["expected_grams"]) == ("T1", 500_000)
    [raised] = await t.events_of_type("T1", "custody.alert_raised")
    assert (raised["kind"], raised["raised_at"], raised["commune"]) == (
        "load_not_received", "2026-03-02T08:00:00Z", "PHUONG-1")

    t.clock.advance(timedelta(minutes=30))
    weighed = await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"), json={
        "trip_id": "T1", "vehicle_id": "V1", "gross_grams": 8_500_000})
    assert weighed.status_code == 201
    [cleared] = await t.events_of_type("T1", "custody.alert_cleared")
    assert (cleared["alert_id"], cleared["cleared_at"]) == (
        alert["alert_id"], "2026-03-02T08:30:00Z")
    assert "station S1" in cleared["resolution"]
    assert await open_alerts(t, "load_not_received") == []


async def test_trip_never_closed_counts_from_its_start(transfer: Any, ev: Any) -> None:
    t = transfer
    start = t.clock.now()
    await t.feed(ev.started("T2", at=start))
    t.clock.set(start + timedelta(hours=9))
    assert await sweep_alarms(t.rt) == 0  # a long route is not a gap yet
    t.clock.set(start + timedelta(hours=10))
    assert await sweep_alarms(t.rt) == 1


async def test_trip_weighed_in_time_never_alarms(transfer: Any, ev: Any) -> None:
    t = transfer
    start = t.clock.now()
    await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    await t.feed(ev.started("T3", at=start), ev.closed("T3", 0, 0, at=start))
    await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"), json={
        "trip_id": "T3", "vehicle_id": "V1", "gross_grams": 8_000_000})
    t.clock.set(start + timedelta(days=2))
    assert await sweep_alarms(t.rt) == 0


async def test_direct_haul_is_closed_by_the_plant_receipt(transfer: Any, ev: Any) -> None:
    t = transfer
    start = t.clock.now()
    await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    await t.feed(ev.plant("P-COMPOST", "food"),
                 ev.started("TD1", at=start), ev.load("TD1", "L1", 400_000, at=start),
                 ev.closed("TD1", 1, 400_000, at=start),
                 ev.started("TD2", at=start), ev.closed("TD2", 0, 0, at=start))
    for trip in ("TD1", "TD2"):
        marked = await t.client.post(f"/v1/trips/{trip}/direct-haul", headers=t.auth(),
                                     json={"plant_id": "P-COMPOST"})
        assert marked.json()["status"] == "direct_haul", marked.text
    at_station = await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"),
                                     json={"trip_id": "TD1", "vehicle_id": "V1",
                                           "gross_grams": 8_400_000})
    assert at_station.status_code == 409  # the plant weighs a direct-haul trip

    # TD1 reaches the plant in time; TD2 does not.
    t.clock.set(start + timedelta(minutes=40))
    await t.feed(ev.received("RD1", "P-COMPOST", 410_000, trip_id="TD1",
                             at=start + timedelta(minutes=40)))
    t.clock.set(start + timedelta(hours=3))
    assert await sweep_alarms(t.rt) == 1
    [alert] = await open_alerts(t, "load_not_received")
    assert alert["subject_id"] == "TD2"
    assert "direct haul to plant P-COMPOST" in alert["detail"]
    status = (await t.client.get("/v1/trips/TD1/reconciliation", headers=t.auth())).json()
    assert status["status"] == "received_at_plant"

    await t.feed(ev.received("RD2", "P-COMPOST", 90_000, trip_id="TD2"))
    [cleared] = await t.events_of_type("TD2", "custody.alert_cleared")
    assert cleared["alert_id"] == alert["alert_id"]
    assert await open_alerts(t, "load_not_received") == []


async def test_direct_haul_to_a_plant_that_refuses_the_category(transfer: Any, ev: Any) -> None:
    t = transfer
    await t.feed(ev.plant("P-MRF", "recyclable"), ev.load("TX", "L1", 100_000, "food"))
    refused = await t.client.post("/v1/trips/TX/direct-haul", headers=t.auth(),
                                  json={"plant_id": "P-MRF"})
    assert (refused.status_code, refused.json()["field"]) == (422, "plant_id")


async def test_batch_not_received_fires_and_clears_on_receipt(transfer: Any, ev: Any) -> None:
    t = transfer
    start = t.clock.now()
    op = t.operator("S1")
    await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    await t.feed(ev.plant("P-COMPOST", "food"), ev.started("T1", at=start),
                 ev.load("T1", "L1", 700_000, at=start), ev.closed("T1", 1, 700_000, at=start))
    await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T1", "vehicle_id": "V1", "gross_grams": 8_700_000})
    await t.client.post("/v1/stations/S1/weighings/T1/out", headers=op,
                        json={"tare_grams": 8_000_000})
    batch = (await t.client.post("/v1/stations/S1/batches", headers=op,
                                 json={"category": "food"})).json()["batch_id"]
    await t.client.post(f"/v1/batches/{batch}/allocations", headers=op, json={"trip_id": "T1"})
    await t.client.post(f"/v1/batches/{batch}/seal", headers=op, json={"seal_number": "K-77"})
    t.clock.set(start + timedelta(hours=1))
    await t.client.post(f"/v1/batches/{batch}/dispatch", headers=op,
                        json={"plant_id": "P-COMPOST", "vehicle_id": "HINO-1"})

    t.clock.set(start + timedelta(hours=2, minutes=59))
    assert await sweep_alarms(t.rt) == 0
    t.clock.set(start + timedelta(hours=3))  # 120 minutes after dispatch
    assert await sweep_alarms(t.rt) == 1
    [alert] = await open_alerts(t, "batch_not_received")
    assert (alert["subject_id"], alert["station_id"], alert["expected_grams"]) == (
        batch, "S1", 700_000)
    assert "seal K-77" in alert["detail"]
    view = (await t.client.get(f"/v1/batches/{batch}", headers=op)).json()
    assert view["not_received_alert_id"] == alert["alert_id"]

    await t.feed(ev.received("R9", "P-COMPOST", 698_000, batch_id=batch))
    [cleared] = await t.events_of_type(batch, "custody.alert_cleared")
    assert (cleared["kind"], cleared["alert_id"]) == ("batch_not_received", alert["alert_id"])
    assert await open_alerts(t, "batch_not_received") == []
    assert (await t.client.get(f"/v1/batches/{batch}", headers=op)).json()["status"] \
        == "received"


async def test_the_background_job_sweeps_on_its_own(transfer_factory: Any, ev: Any) -> None:
    assert alarm_loop in SPEC.background
    async with transfer_factory(alarm_sweep_seconds=0.05) as t:
        start = t.clock.now()
        await t.feed(ev.started("TB", at=start), ev.closed("TB", 0, 0, at=start))
        t.clock.set(start + timedelta(hours=1))
        deadline = asyncio.get_running_loop().time() + 10
        while not await open_alerts(t, "load_not_received"):
            assert asyncio.get_running_loop().time() < deadline, "the loop never swept"
            await asyncio.sleep(0.05)


async def test_waste_held_at_station_fires_and_clears_when_the_last_batch_leaves(
        transfer: Any, ev: Any) -> None:
    t = transfer
    start = t.clock.now()
    op = t.operator("S1")
    await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    await t.feed(ev.plant("P-COMPOST", "food"), ev.plant("P-LF", "other"),
                 ev.started("T1", at=start), ev.load("T1", "L1", 600_000, "food", at=start),
                 ev.load("T1", "L2", 400_000, "other", at=start),
                 ev.closed("T1", 2, 1_000_000, at=start))
    await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T1", "vehicle_id": "V1", "gross_grams": 9_000_000})
    await t.client.post("/v1/stations/S1/weighings/T1/out", headers=op,
                        json={"tare_grams": 8_000_000})

    async def batch_of(category: str, seal: str) -> str:
        batch = (await t.client.post("/v1/stations/S1/batches", headers=op,
                                     json={"category": category})).json()["batch_id"]
        await t.client.post(f"/v1/batches/{batch}/allocations", headers=op,
                            json={"trip_id": "T1"})
        await t.client.post(f"/v1/batches/{batch}/seal", headers=op, json={"seal_number": seal})
        return str(batch)

    food = await batch_of("food", "K-1")
    t.clock.set(start + timedelta(hours=1))
    sent = await t.client.post(f"/v1/batches/{food}/dispatch", headers=op,
                               json={"plant_id": "P-COMPOST", "vehicle_id": "HINO-1"})
    assert sent.status_code == 200, sent.text
    await t.feed(ev.received("R1", "P-COMPOST", 600_000, batch_id=food))
    t.clock.set(start + timedelta(hours=71, minutes=59))  # the test settings hold 72 h
    assert await sweep_alarms(t.rt) == 0
    t.clock.set(start + timedelta(hours=72))
    assert await sweep_alarms(t.rt) == 1  # the other 400 kg are still at the station
    [alert] = await open_alerts(t, "waste_held_at_station")
    assert (alert["subject_id"], alert["station_id"], alert["expected_grams"]) == (
        "T1", "S1", 400_000)
    assert "600000 g of 1000000 g net dispatched" in alert["detail"]
    [raised] = await t.events_of_type("T1", "custody.alert_raised")
    assert (raised["kind"], raised["commune"]) == ("waste_held_at_station", "PHUONG-1")
    trip = (await t.client.get("/v1/trips/T1/reconciliation", headers=op)).json()
    assert (trip["held_alert_id"], trip["released_at"]) == (alert["alert_id"], None)

    other = await batch_of("other", "K-2")  # sealed, not yet gone: still held
    assert await sweep_alarms(t.rt) == 0
    assert await t.events_of_type("T1", "custody.alert_cleared") == []
    t.clock.set(start + timedelta(hours=80))
    sent = await t.client.post(f"/v1/batches/{other}/dispatch", headers=op,
                               json={"plant_id": "P-LF", "vehicle_id": "HINO-2"})
    assert sent.status_code == 200, sent.text
    [cleared] = await t.events_of_type("T1", "custody.alert_cleared")
    assert (cleared["alert_id"], cleared["cleared_at"]) == (
        alert["alert_id"], "2026-03-05T14:00:00Z")
    assert f"dispatched in batch {other} to plant P-LF" in cleared["resolution"]
    assert await open_alerts(t, "waste_held_at_station") == []
    trip = (await t.client.get("/v1/trips/T1/reconciliation", headers=op)).json()
    assert trip["released_at"] == "2026-03-05T14:00:00Z"
    await t.feed(ev.received("R2", "P-LF", 400_000, batch_id=other, category="other"))
    t.clock.set(start + timedelta(days=30))
    assert await sweep_alarms(t.rt) == 0  # released: never raised again
