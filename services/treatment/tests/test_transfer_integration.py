"""Real transfer and collection events, consumed from Kafka, drive receipts and the fate.

The upstream events are written through the runtime's EventStore as the transfer and
collection services (each on its own PostgreSQL database) and published by the real
OutboxRelay; the treatment app's consumers read them from the topics. Nothing is faked.
The numbers are worked by hand over the real path (the rule: wastetrail_contracts.fate).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from treatment_testkit import (
    T0,
    Treatment,
    UpstreamFactory,
    eventually,
    operator_actor,
    uid,
)
from wastetrail_contracts.enums import Category, CustodySite, Role
from wastetrail_contracts.events.collection import (
    LoadCollected,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.transfer import (
    Allocation,
    BatchConsolidated,
    BatchDispatched,
    TripReconciled,
    TripWeighed,
)

pytestmark = pytest.mark.integration


def _find(node: dict[str, Any], kind: str, ref: str | None = None) -> dict[str, Any]:
    if node["kind"] == kind and (ref is None or node["ref"] == ref):
        return node
    for child in node["children"]:
        try:
            return _find(child, kind, ref)
        except LookupError:
            continue
    raise LookupError(f"{kind} {ref}")


async def test_fate_of_a_load_over_real_transfer_events(
    consuming: Treatment, upstream: UpstreamFactory,
) -> None:
    t = consuming
    plant_a, plant_b = uid("PA"), uid("PB")
    trip, other_trip, vehicle = uid("T"), uid("T"), uid("V")
    b1, b2 = uid("B1"), uid("B2")
    l1, l2, l3 = uid("L1"), uid("L2"), uid("L3")
    await t.register_plant(plant_a, methods=["composting", "sanitary_landfill"])
    await t.register_plant(plant_b, methods=["incineration_energy_recovery"])

    # Collection: a trip of three food loads, 40 000 g scanned.
    collection = await upstream("collection", operator_actor("D-7", Role.COLLECTOR))
    await collection.emit(vehicle, VehicleRegistered(
        vehicle_id=vehicle, plate="51D-999.01", collector_id="C-1", capacity_grams=8_000_000,
        registered_tare_grams=9_000))
    await collection.emit(trip, TripStarted(
        trip_id=trip, vehicle_id=vehicle, collector_id="C-1", crew=("Minh", "Hoa"),
        commune="PHUONG-1", started_at=T0 - timedelta(hours=5)))
    for load, grams in ((l1, 12_000), (l2, 18_000), (l3, 10_000)):
        await collection.emit(load, LoadCollected(
            load_id=load, trip_id=trip, generator_id=f"G-{load}", commune="PHUONG-1",
            category=Category.FOOD, measure="scale", grams=grams,
            collected_at=T0 - timedelta(hours=4), device_id="D-7", vehicle_id=vehicle,
            idempotency_key=load))
    await collection.emit(trip, TripClosed(
        trip_id=trip, vehicle_id=vehicle, declared_total_grams=40_000,
        scanned_total_grams=40_000, load_count=3, closed_at=T0 - timedelta(hours=3)))

    # Transfer: station ST-1 weighs the trip at 41 000 g net and splits it over two
    # batches (24 600 g into B1, beside another trip's 25 400 g; 16 400 g into B2).
    transfer = await upstream("transfer", operator_actor("st-op-1", Role.STATION_OPERATOR))
    await transfer.emit(trip, TripWeighed(
        trip_id=trip, vehicle_id=vehicle, site=CustodySite.STATION, site_id="ST-1",
        gross_grams=50_000, tare_grams=9_000, net_grams=41_000, tare_source="weighed",
        weighed_in_at=T0 - timedelta(hours=2), weighed_out_at=T0 - timedelta(hours=2)),
        TripReconciled(trip_id=trip, site_id="ST-1", net_grams=41_000, scanned_grams=40_000,
                       load_count=3, difference_grams=1_000, tolerance_grams=2_000,
                       discrepancy=False))
    for batch, allocations in ((b1, ((trip, 24_600), (other_trip, 25_400))),
                               (b2, ((trip, 16_400),))):
        total = sum(g for _, g in allocations)
        await transfer.emit(batch, BatchConsolidated(
            batch_id=batch, station_id="ST-1", category=Category.FOOD,
            allocations=tuple(Allocation(trip_id=x, grams=g) for x, g in allocations),
            total_grams=total, seal_number=f"S-{batch}"),
            BatchDispatched(batch_id=batch, station_id="ST-1", category=Category.FOOD,
                            seal_number=f"S-{batch}", dispatched_grams=total,
                            plant_id=plant_a, vehicle_id="TRUCK-1",
                            dispatched_at=T0 - timedelta(hours=1)))

    async def path_known() -> bool:
        r = await t.client.get(f"/v1/loads/{l1}/fate", headers=t.auditor())
        if r.status_code != 200:
            return False
        f = r.json()
        return (f["trip"]["net_grams"] == 41_000 and f["trip"]["scanned_total_grams"] == 40_000
                and sorted(b["batch_id"] for b in f["batches"] if b["plant_id"]) == sorted(
                    [b1, b2]))
    await eventually(path_known, what="collection and transfer events to be consumed")

    # Plant A weighs B1 at 50 000 g and refuses 5 000 g; plant B takes the refused part,
    # weighs it at 4 900 g and incinerates it all.
    a, b = t.operator(plant_a), t.operator(plant_b)
    ra = (await t.client.post(f"/v1/plants/{plant_a}/receipts", headers=a, json={
        "batch_id": b1, "measured_grams": 50_000, "status": "PARTIALLY_REFUSED",
        "refused_grams": 5_000, "refusal_reason": "plastic film in food waste"})).json()
    assert ra["declared_grams"] == 50_000 and ra["accepted_grams"] == 45_000
    x = (await t.client.post(f"/v1/receipts/{ra['receipt_id']}/redirects", headers=a, json={
        "destination_kind": "plant", "destination_id": plant_b})).json()
    assert x["grams"] == 5_000
    rb = (await t.client.post(f"/v1/plants/{plant_b}/receipts", headers=b, json={
        "redirect_id": x["redirect_id"], "measured_grams": 4_900, "status": "ACCEPTED"})).json()
    assert (await t.client.post(f"/v1/receipts/{rb['receipt_id']}/treatments", headers=b, json={
        "methods": {"incineration_energy_recovery": 4_900}, "energy_kwh": 2_000})
            ).status_code == 201
    # Plant A: 30 000 g composted, 12 000 g to sanitary landfill, 3 000 g not treated yet.
    assert (await t.client.post(f"/v1/receipts/{ra['receipt_id']}/treatments", headers=a, json={
        "methods": {"composting": 30_000, "sanitary_landfill": 12_000}})).status_code == 201

    fate = (await t.client.get(f"/v1/loads/{l1}/fate", headers=t.auditor())).json()
    tree = fate["tree"]
    # The trip is all food: its food share is the 41 000 g net. L1 is 12 000 of the 40 000 g
    # scanned. Every quantity measured downstream of a batch is shared first among the
    # batch's trips by allocation (this trip: 24 600 of B1's 50 000 g = 0.492), then among
    # the trip's food loads by scanned grams (L1: 0.3), each by largest remainder.
    # B1 at plant A: composted 30 000 → trip 14 760 → L1 4 428; landfilled 12 000 → trip
    # 5 904 → L1 1 771.2 → 1 771 (the leftover gram goes to L2's .8); 3 000 not treated
    # yet → trip 1 476 → L1 442.8 → 443. The 5 000 g refused were weighed at plant B at
    # 4 900 g and incinerated: trip 2 410.8 → 2 411 → L1 723.3 → 723.
    # B2 (this trip's 16 400 g alone) is on the road: L1 4 920.
    assert fate["treated_by_method"] == {"composting": 4_428, "sanitary_landfill": 1_771,
                                         "incineration_energy_recovery": 723}
    assert _find(tree, "awaiting_treatment")["grams"] == 443
    assert _find(tree, "accepted")["grams"] == 4_428 + 1_771 + 443
    assert _find(tree, "refused")["grams"] == 723
    assert _find(tree, "batch", b1)["grams"] == 4_428 + 1_771 + 443 + 723
    assert _find(tree, "batch", b2)["grams"] == 4_920
    assert _find(_find(tree, "batch", b2), "in_transit")["site_id"] == plant_a
    # The load's share of what was measured: 12 285 g (its 14.76 g of the 100 g plant B
    # did not find in the refused part are not invented).
    assert fate["grams"] == tree["grams"] == 12_285
    assert sum(d["grams"] for d in fate["destinations"]) == 12_285
    # The path names its actors and places.
    assert fate["trip"]["weighed_site_id"] == "ST-1" and fate["trip"]["weighed_by"] == "st-op-1"
    assert {bt["dispatched_by"] for bt in fate["batches"]} == {"st-op-1"}
    assert _find(tree, "receipt", ra["receipt_id"])["actor"] == f"op-{plant_a}"
    assert fate["load"]["device_id"] == "D-7"

    # The trip's loads share exactly what was measured of the trip: 41 000 g less its share
    # of plant B's 100 g (2 460 − 2 411 = 49 g).
    shares = [(await t.client.get(f"/v1/loads/{load}/fate", headers=t.auditor())).json()["grams"]
              for load in (l1, l2, l3)]
    assert shares == [12_285, 18_428, 10_238] and sum(shares) == 40_951
    every = (await t.client.get(f"/v1/trips/{trip}/fates", headers=t.auditor())).json()
    assert [f["grams"] for f in sorted(every["loads"], key=lambda f: (f["load"]["load_id"] != l1,
            f["load"]["load_id"] != l2))] == [12_285, 18_428, 10_238]
