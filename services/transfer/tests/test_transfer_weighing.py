"""Stations, weighing and reconciliation over HTTP, with collection's events fed in."""

from __future__ import annotations

from typing import Any

import pytest
from wastetrail_contracts.enums import Role

pytestmark = pytest.mark.integration

STATION = {"station_id": "S1", "name": "Trạm trung chuyển Phường 1", "commune": "PHUONG-1",
           "capacity_grams": 200_000_000, "categories": ["food", "other", "recyclable"]}


async def register(t: Any, body: dict[str, Any] = STATION) -> None:
    response = await t.client.post("/v1/stations", json=body, headers=t.auth())
    assert response.status_code == 201, response.text


async def test_admin_registers_a_station(transfer: Any) -> None:
    t = transfer
    response = await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    assert response.status_code == 201
    assert response.json()["categories"] == ["food", "other", "recyclable"]
    [(kind, payload)] = await t.stream("S1")
    assert kind == "transfer.station_registered"
    assert payload["capacity_grams"] == 200_000_000

    again = await t.client.post("/v1/stations", json=STATION, headers=t.auth())
    assert (again.status_code, again.json()["field"]) == (409, "station_id")

    forbidden = await t.client.post("/v1/stations", json={**STATION, "station_id": "S2"},
                                    headers=t.operator("S2"))
    assert forbidden.status_code == 403

    bad = await t.client.post("/v1/stations", json={**STATION, "station_id": "S3",
                                                     "categories": ["food", "food"]},
                              headers=t.auth())
    assert (bad.status_code, bad.json()["field"]) == (422, "categories")

    listed = await t.client.get("/v1/stations", headers=t.auth(Role.AUDITOR))
    assert [s["station_id"] for s in listed.json()["items"]] == ["S1"]


async def test_discrepancy_with_exact_numbers(transfer: Any, ev: Any) -> None:
    """Scanned 1,000,000 g, net 1,150,000 g, tolerance 5 % → +150,000 g, a discrepancy."""
    t = transfer
    await register(t)
    await t.feed(ev.vehicle("V1"), ev.started("T1"),
                 *[ev.load("T1", f"L{i}", 250_000) for i in range(4)],
                 ev.closed("T1", 4, 1_000_000))

    weigh_in = await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"),
                                   json={"trip_id": "T1", "vehicle_id": "V1",
                                         "gross_grams": 9_150_000})
    assert weigh_in.status_code == 201, weigh_in.text
    assert weigh_in.json()["status"] == "weighed_in"
    out = await t.client.post("/v1/stations/S1/weighings/T1/out", headers=t.operator("S1"),
                              json={"tare_grams": 8_000_000})
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["status"] == "reconciled"
    assert (body["net_grams"], body["scanned_grams"], body["difference_grams"],
            body["tolerance_grams"], body["discrepancy"]) == (
        1_150_000, 1_000_000, 150_000, 50_000, True)

    [weighed] = await t.events_of_type("T1", "transfer.trip_weighed")
    assert (weighed["site"], weighed["site_id"], weighed["gross_grams"], weighed["tare_grams"],
            weighed["net_grams"], weighed["tare_source"]) == (
        "station", "S1", 9_150_000, 8_000_000, 1_150_000, "weighed")
    [reconciled] = await t.events_of_type("T1", "transfer.trip_reconciled")
    assert reconciled == {"trip_id": "T1", "site_id": "S1", "net_grams": 1_150_000,
                          "scanned_grams": 1_000_000, "load_count": 4,
                          "difference_grams": 150_000, "tolerance_grams": 50_000,
                          "discrepancy": True}
    [alert] = await t.events_of_type("T1", "custody.alert_raised")
    assert (alert["kind"], alert["subject_id"], alert["expected_grams"],
            alert["observed_grams"]) == ("trip_weight_mismatch", "T1", 1_000_000, 1_150_000)

    alerts = await t.client.get("/v1/alerts", params={"kind": "trip_weight_mismatch"},
                                headers=t.auth(Role.AUDITOR))
    [listed] = alerts.json()["items"]
    assert listed["alert_id"] == alert["alert_id"] == body["mismatch_alert_id"]

    # After investigating, the station's operator closes the mismatch with a reason.
    cleared = await t.client.post(f"/v1/alerts/{alert['alert_id']}/clear",
                                  json={"resolution": "on-truck scale recalibrated"},
                                  headers=t.operator("S1"))
    assert cleared.status_code == 200, cleared.text
    assert [p["resolution"] for p in await t.events_of_type("T1", "custody.alert_cleared")] == [
        "on-truck scale recalibrated"]


async def test_within_tolerance_reconciles_without_alert(transfer: Any, ev: Any) -> None:
    t = transfer
    await register(t)
    await t.feed(ev.started("T2"), ev.load("T2", "L1", 600_000), ev.load("T2", "L2", 400_000),
                 ev.closed("T2", 2, 1_000_000))
    await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"),
                        json={"trip_id": "T2", "vehicle_id": "V1", "gross_grams": 9_040_000})
    out = await t.client.post("/v1/stations/S1/weighings/T2/out", headers=t.operator("S1"),
                              json={"tare_grams": 8_000_000})
    assert (out.json()["difference_grams"], out.json()["discrepancy"]) == (40_000, False)
    assert await t.events_of_type("T2", "custody.alert_raised") == []


async def test_trip_weighed_before_its_loads_reconciles_once_they_arrive(
        transfer: Any, ev: Any) -> None:
    t = transfer
    await register(t)
    await t.feed(ev.vehicle("V7", tare=7_500_000))
    # The vehicle is on the bridge before collection's events reach the station.
    await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"),
                        json={"trip_id": "T3", "vehicle_id": "V7", "gross_grams": 8_500_000})
    out = await t.client.post("/v1/stations/S1/weighings/T3/out", headers=t.operator("S1"),
                              json={})  # left without weighing out: registered tare
    assert out.status_code == 200, out.text
    assert (out.json()["status"], out.json()["tare_source"], out.json()["net_grams"]) == (
        "awaiting_scans", "registered", 1_000_000)
    [weighed] = await t.events_of_type("T3", "transfer.trip_weighed")
    assert (weighed["tare_source"], weighed["weighed_out_at"]) == ("registered", None)

    await t.feed(ev.closed("T3", 2, 980_000, vehicle_id="V7"),
                 ev.load("T3", "L31", 500_000, vehicle_id="V7"))
    status = (await t.client.get("/v1/trips/T3/reconciliation", headers=t.operator("S1"))).json()
    assert status["status"] == "awaiting_scans"  # one load still missing
    assert await t.events_of_type("T3", "transfer.trip_reconciled") == []

    await t.feed(ev.load("T3", "L32", 480_000, vehicle_id="V7"))
    status = (await t.client.get("/v1/trips/T3/reconciliation", headers=t.operator("S1"))).json()
    assert (status["status"], status["difference_grams"], status["discrepancy"]) == (
        "reconciled", 20_000, False)
    assert status["shares"] == {"food": 1_000_000}
    [reconciled] = await t.events_of_type("T3", "transfer.trip_reconciled")
    assert (reconciled["scanned_grams"], reconciled["load_count"]) == (980_000, 2)


async def test_redelivered_load_is_counted_once(transfer: Any, ev: Any) -> None:
    t = transfer
    await register(t)
    [envelope] = await t.feed(ev.load("T4", "L41", 300_000))
    from wastetrail_contracts import encode
    from wastetrail_runtime.consumer import Record

    runner = t.runners["transfer.collection"]
    await runner.process(Record(topic="x", partition=0, offset=99, key=b"T4",
                                value=encode(envelope)))
    await t.feed(ev.load("T4", "L41", 300_000))  # same load id, new event (device re-sync)
    status = (await t.client.get("/v1/trips/T4/reconciliation", headers=t.auth())).json()
    assert (status["scanned_load_count"], status["scanned_grams"]) == (1, 300_000)


async def test_loads_in_one_consumer_batch_count_once_and_reconcile_at_the_last(
    transfer: Any, ev: Any
) -> None:
    t = transfer
    await register(t)
    await t.feed(ev.vehicle("V8"), ev.started("T8", vehicle_id="V8"))
    op = t.operator("S1")
    weighed = await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T8", "vehicle_id": "V8", "gross_grams": 9_000_000})
    assert weighed.status_code == 201, weighed.text
    await t.client.post("/v1/stations/S1/weighings/T8/out", headers=op,
                        json={"tare_grams": 8_000_000})
    # One batch: three loads, one of them announced twice (a device re-sync), the close.
    await t.feed(ev.load("T8", "L81", 400_000, vehicle_id="V8"),
                 ev.load("T8", "L82", 300_000, "recyclable", vehicle_id="V8"),
                 ev.load("T8", "L81", 400_000, vehicle_id="V8"),
                 ev.load("T8", "L83", 250_000, vehicle_id="V8"),
                 ev.closed("T8", 3, 950_000, vehicle_id="V8"), batch=True)
    status = (await t.client.get("/v1/trips/T8/reconciliation", headers=op)).json()
    assert (status["status"], status["scanned_load_count"], status["scanned_grams"]) == (
        "reconciled", 3, 950_000)
    assert status["difference_grams"] == 50_000
    [reconciled] = await t.events_of_type("T8", "transfer.trip_reconciled")
    assert (reconciled["scanned_grams"], reconciled["load_count"]) == (950_000, 3)


async def test_weighing_rules(transfer: Any, ev: Any) -> None:
    t = transfer
    await register(t)
    await t.feed(ev.started("T5", vehicle_id="V5"), ev.load("T5", "L51", 10_000, "hazardous",
                                                             vehicle_id="V5"))
    op = t.operator("S1")
    wrong_vehicle = await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T5", "vehicle_id": "V9", "gross_grams": 9_000_000})
    assert (wrong_vehicle.status_code, wrong_vehicle.json()["field"]) == (422, "vehicle_id")
    not_accepted = await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T5", "vehicle_id": "V5", "gross_grams": 9_000_000})
    assert (not_accepted.status_code, not_accepted.json()["type"].rsplit("/", 1)[1]) == (
        422, "category-not-accepted")
    float_grams = await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T6", "vehicle_id": "V6", "gross_grams": 1.5})
    assert (float_grams.status_code, float_grams.json()["field"]) == (422, "gross_grams")

    await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T6", "vehicle_id": "V6", "gross_grams": 5_000_000})
    twice = await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T6", "vehicle_id": "V6", "gross_grams": 5_000_000})
    assert twice.status_code == 409
    heavy_tare = await t.client.post("/v1/stations/S1/weighings/T6/out", headers=op,
                                     json={"tare_grams": 5_000_001})
    assert (heavy_tare.status_code, heavy_tare.json()["field"]) == (422, "tare_grams")
    no_tare = await t.client.post("/v1/stations/S1/weighings/T6/out", headers=op, json={})
    assert (no_tare.status_code, no_tare.json()["field"]) == (409, "tare_grams")

    other_station = await t.client.post("/v1/stations/S1/weighings/T6/out",
                                        headers=t.operator("S2"), json={"tare_grams": 1})
    assert (other_station.status_code, other_station.json()["field"]) == (403, "station_id")
    auditor = await t.client.post("/v1/stations/S1/weighings/T6/out",
                                  headers=t.auth(Role.AUDITOR), json={"tare_grams": 1})
    assert auditor.status_code == 403
    unknown = await t.client.get("/v1/trips/NOPE/reconciliation", headers=t.auth())
    assert unknown.status_code == 404
