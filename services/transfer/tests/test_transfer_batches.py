"""Consolidation into batches, seal, dispatch, inventory — and every invariant refused."""

from __future__ import annotations

from typing import Any

import pytest
from wastetrail_contracts.enums import Role

pytestmark = pytest.mark.integration

STATION = {"station_id": "S1", "name": "Trạm Phường 1", "commune": "PHUONG-1",
           "capacity_grams": 200_000_000, "categories": ["food", "other", "recyclable"]}


async def arrive(t: Any, ev: Any, trip_id: str, loads: list[tuple[str, int]], net: int,
                 vehicle_id: str = "V1") -> dict[str, Any]:
    """A trip collected, closed, weighed in and out at S1 with the given net weight."""
    await t.feed(ev.started(trip_id, vehicle_id=vehicle_id),
                 *[ev.load(trip_id, f"{trip_id}-L{i}", grams, category, vehicle_id=vehicle_id)
                   for i, (category, grams) in enumerate(loads)],
                 ev.closed(trip_id, len(loads), sum(g for _c, g in loads),
                           vehicle_id=vehicle_id))
    await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"), json={
        "trip_id": trip_id, "vehicle_id": vehicle_id, "gross_grams": 8_000_000 + net})
    out = await t.client.post(f"/v1/stations/S1/weighings/{trip_id}/out",
                              headers=t.operator("S1"), json={"tare_grams": 8_000_000})
    assert out.json()["status"] == "reconciled", out.text
    return dict(out.json())


@pytest.fixture
async def station(transfer: Any, ev: Any) -> Any:
    t = transfer
    assert (await t.client.post("/v1/stations", json=STATION, headers=t.auth())).status_code \
        == 201
    await t.feed(ev.plant("P-COMPOST", "food"), ev.plant("P-MRF", "recyclable"))
    return t


async def open_batch(t: Any, category: str) -> str:
    response = await t.client.post("/v1/stations/S1/batches", headers=t.operator("S1"),
                                   json={"category": category})
    assert response.status_code == 201, response.text
    return str(response.json()["batch_id"])


def problem(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["type"].rsplit("/", 1)[1], body.get("field", "")


async def test_over_allocation_is_refused_with_a_clear_error(station: Any, ev: Any) -> None:
    t = station
    await arrive(t, ev, "TA", [("food", 1_000_000)], net=1_000_000)
    first, second = await open_batch(t, "food"), await open_batch(t, "food")
    op = t.operator("S1")

    part = await t.client.post(f"/v1/batches/{first}/allocations", headers=op,
                               json={"trip_id": "TA", "grams": 700_000})
    assert part.status_code == 200, part.text
    assert part.json()["trip"] == {"trip_id": "TA", "category": "food", "net_grams": 1_000_000,
                                   "allocated_grams": 700_000, "remaining_grams": 300_000}

    too_much = await t.client.post(f"/v1/batches/{second}/allocations", headers=op,
                                   json={"trip_id": "TA", "grams": 300_001})
    assert problem(too_much) == (422, "over-allocation", "grams")
    assert too_much.json()["remaining_grams"] == 300_000
    assert "300000 g of food left" in too_much.json()["detail"]

    rest = await t.client.post(f"/v1/batches/{second}/allocations", headers=op,
                               json={"trip_id": "TA"})  # the whole rest of the trip
    assert rest.json()["batch"]["allocations"] == [{"trip_id": "TA", "grams": 300_000}]
    assert rest.json()["trip"]["remaining_grams"] == 0
    nothing_left = await t.client.post(f"/v1/batches/{first}/allocations", headers=op,
                                       json={"trip_id": "TA"})
    assert problem(nothing_left) == (422, "over-allocation", "trip_id")

    # Taking the trip out of a batch frees its grams again.
    released = await t.client.delete(f"/v1/batches/{second}/allocations/TA", headers=op)
    assert released.json()["trip"]["remaining_grams"] == 300_000
    assert released.json()["batch"]["allocations"] == []


async def test_mixed_categories_are_refused(station: Any, ev: Any) -> None:
    t = station
    await arrive(t, ev, "TR", [("recyclable", 400_000)], net=400_000)
    batch = await open_batch(t, "food")
    refused = await t.client.post(f"/v1/batches/{batch}/allocations", headers=t.operator("S1"),
                                  json={"trip_id": "TR"})
    assert problem(refused) == (422, "mixed-categories", "trip_id")
    assert "holds food only" in refused.json()["detail"]
    assert "recyclable" in refused.json()["detail"]

    not_accepted = await t.client.post("/v1/stations/S1/batches", headers=t.operator("S1"),
                                       json={"category": "hazardous"})
    assert problem(not_accepted) == (422, "category-not-accepted", "category")


async def test_mixed_trip_contributes_only_its_share_of_the_category(
        station: Any, ev: Any) -> None:
    t = station
    # 600 kg food + 400 kg other scanned, 1,100 kg on the bridge: shares 660 kg / 440 kg.
    result = await arrive(t, ev, "TM", [("food", 600_000), ("other", 400_000)], net=1_100_000)
    assert result["shares"] == {"food": 660_000, "other": 440_000}
    food, other = await open_batch(t, "food"), await open_batch(t, "other")
    op = t.operator("S1")
    a = await t.client.post(f"/v1/batches/{food}/allocations", headers=op, json={"trip_id": "TM"})
    b = await t.client.post(f"/v1/batches/{other}/allocations", headers=op,
                            json={"trip_id": "TM"})
    assert (a.json()["batch"]["total_grams"], b.json()["batch"]["total_grams"]) == (
        660_000, 440_000)


async def test_dispatch_to_a_plant_that_does_not_accept_the_category_is_refused(
        station: Any, ev: Any) -> None:
    t = station
    await arrive(t, ev, "TF", [("food", 900_000)], net=900_000)
    batch = await open_batch(t, "food")
    op = t.operator("S1")
    await t.client.post(f"/v1/batches/{batch}/allocations", headers=op, json={"trip_id": "TF"})

    early = await t.client.post(f"/v1/batches/{batch}/dispatch", headers=op,
                                json={"plant_id": "P-COMPOST", "vehicle_id": "HINO-1"})
    assert problem(early) == (409, "batch-open", "batch_id")

    sealed = await t.client.post(f"/v1/batches/{batch}/seal", headers=op,
                                 json={"seal_number": "SEAL-0001"})
    assert sealed.json()["status"] == "sealed"
    late = await t.client.post(f"/v1/batches/{batch}/allocations", headers=op,
                               json={"trip_id": "TF"})
    assert problem(late) == (409, "batch-sealed", "batch_id")

    wrong = await t.client.post(f"/v1/batches/{batch}/dispatch", headers=op,
                                json={"plant_id": "P-MRF", "vehicle_id": "HINO-1"})
    assert problem(wrong) == (422, "plant-does-not-accept", "plant_id")
    assert "accepts recyclable, not food" in wrong.json()["detail"]
    unknown = await t.client.post(f"/v1/batches/{batch}/dispatch", headers=op,
                                  json={"plant_id": "P-NOWHERE", "vehicle_id": "HINO-1"})
    assert problem(unknown) == (422, "unknown-plant", "plant_id")

    ok = await t.client.post(f"/v1/batches/{batch}/dispatch", headers=op, json={
        "plant_id": "P-COMPOST", "vehicle_id": "HINO-1", "dispatched_grams": 905_000})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "dispatched"

    [consolidated] = await t.events_of_type(batch, "transfer.batch_consolidated")
    assert consolidated == {"batch_id": batch, "station_id": "S1", "category": "food",
                            "allocations": [{"trip_id": "TF", "grams": 900_000}],
                            "total_grams": 900_000, "seal_number": "SEAL-0001"}
    [dispatched] = await t.events_of_type(batch, "transfer.batch_dispatched")
    assert (dispatched["plant_id"], dispatched["dispatched_grams"], dispatched["vehicle_id"],
            dispatched["seal_number"]) == ("P-COMPOST", 905_000, "HINO-1", "SEAL-0001")


async def test_unreconciled_trip_cannot_be_allocated(station: Any, ev: Any) -> None:
    t = station
    op = t.operator("S1")
    await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "TW", "vehicle_id": "V1", "gross_grams": 9_000_000})
    await t.client.post("/v1/stations/S1/weighings/TW/out", headers=op,
                        json={"tare_grams": 8_000_000})
    batch = await open_batch(t, "food")
    waiting = await t.client.post(f"/v1/batches/{batch}/allocations", headers=op,
                                  json={"trip_id": "TW"})
    assert problem(waiting) == (409, "trip-not-reconciled", "trip_id")
    empty = await t.client.post(f"/v1/batches/{batch}/seal", headers=op,
                                json={"seal_number": "S-1"})
    assert problem(empty) == (409, "empty-batch", "allocations")


async def test_inventory_and_open_batches(station: Any, ev: Any) -> None:
    t = station
    op = t.operator("S1")
    await arrive(t, ev, "T1", [("food", 1_000_000)], net=1_000_000)
    await arrive(t, ev, "T2", [("recyclable", 300_000)], net=310_000)
    # Weighed but its loads are not known yet: at the station, category unknown.
    await t.client.post("/v1/stations/S1/weighings", headers=op, json={
        "trip_id": "T3", "vehicle_id": "V1", "gross_grams": 8_250_000})
    await t.client.post("/v1/stations/S1/weighings/T3/out", headers=op,
                        json={"tare_grams": 8_000_000})

    shipped = await open_batch(t, "food")
    await t.client.post(f"/v1/batches/{shipped}/allocations", headers=op,
                        json={"trip_id": "T1", "grams": 800_000})
    await t.client.post(f"/v1/batches/{shipped}/seal", headers=op, json={"seal_number": "X1"})
    await t.client.post(f"/v1/batches/{shipped}/dispatch", headers=op,
                        json={"plant_id": "P-COMPOST", "vehicle_id": "HINO-1"})
    still_open = await open_batch(t, "recyclable")
    await t.client.post(f"/v1/batches/{still_open}/allocations", headers=op,
                        json={"trip_id": "T2"})

    # The plant refuses 100 kg of the food batch and sends it back to the station.
    await t.feed(ev.received("R1", "P-COMPOST", 800_000, batch_id=shipped, refused=100_000),
                 ev.redirected("R1", "P-COMPOST", "S1", 100_000, batch_id=shipped))

    inventory = await t.client.get("/v1/stations/S1/inventory", headers=t.auth(Role.AUDITOR))
    assert inventory.status_code == 200, inventory.text
    lines = {line["category"]: line for line in inventory.json()["categories"]}
    assert lines["food"] == {"category": "food", "arrived_grams": 1_000_000,
                             "dispatched_grams": 800_000, "returned_grams": 100_000,
                             "on_hand_grams": 300_000}
    assert lines["recyclable"]["on_hand_grams"] == 310_000
    assert lines["other"]["on_hand_grams"] == 0
    assert inventory.json()["unclassified_grams"] == 250_000
    assert inventory.json()["on_hand_grams"] == 300_000 + 310_000 + 250_000

    [returned] = await t.events_of_type(shipped, "transfer.refused_waste_returned")
    assert (returned["station_id"], returned["grams"], returned["receipt_id"]) == (
        "S1", 100_000, "R1")

    open_batches = await t.client.get("/v1/stations/S1/batches", headers=op)
    assert [b["batch_id"] for b in open_batches.json()["items"]] == [still_open]
    received = await t.client.get("/v1/stations/S1/batches", params={"status": "received"},
                                  headers=op)
    assert [b["batch_id"] for b in received.json()["items"]] == [shipped]
    elsewhere = await t.client.get("/v1/stations/S1/inventory", headers=t.operator("S2"))
    assert elsewhere.status_code == 403


async def test_concurrent_allocations_never_exceed_the_trip(station: Any, ev: Any) -> None:
    """Five operators race to put 300 kg each of a 1,000 kg trip into five batches."""
    import asyncio

    t = station
    await arrive(t, ev, "TC", [("food", 1_000_000)], net=1_000_000)
    batches = [await open_batch(t, "food") for _ in range(5)]
    responses = await asyncio.gather(*[
        t.client.post(f"/v1/batches/{b}/allocations", headers=t.operator("S1"),
                      json={"trip_id": "TC", "grams": 300_000}) for b in batches])
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 422, 422]
    refused = [r for r in responses if r.status_code == 422]
    assert all(problem(r) == (422, "over-allocation", "grams") for r in refused)
    totals = [(await t.client.get(f"/v1/batches/{b}", headers=t.auth())).json()["total_grams"]
              for b in batches]
    assert sum(totals) == 900_000


async def test_openapi_documents_the_api(transfer: Any) -> None:
    schema = (await transfer.client.get("/openapi.json")).json()
    assert {"/v1/stations", "/v1/stations/{station_id}/weighings",
            "/v1/stations/{station_id}/weighings/{trip_id}/out",
            "/v1/batches/{batch_id}/allocations", "/v1/batches/{batch_id}/dispatch",
            "/v1/stations/{station_id}/inventory", "/v1/trips/{trip_id}/reconciliation",
            "/v1/alerts"} <= set(schema["paths"])
