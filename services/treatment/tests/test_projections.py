"""Upstream facts in the read models: re-statements replace, one batch is one transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select
from treatment_testkit import T0, Treatment, batch_events, seed, uid
from wastetrail_contracts.enums import Category
from wastetrail_contracts.events.collection import LoadCollected, TripStarted
from wastetrail_treatment.adapters.tables import Allocation, Trip
from wastetrail_treatment.entrypoints.consumers import make_consumers

pytestmark = pytest.mark.integration


def test_consumer_groups_read_the_events_the_brief_names() -> None:
    transfer, collection = make_consumers(None)  # type: ignore[arg-type]
    assert (transfer.name, transfer.source) == ("treatment.transfer", "transfer")
    assert set(transfer.handlers) == {"transfer.batch_consolidated", "transfer.batch_dispatched",
                                      "transfer.trip_weighed", "transfer.trip_reconciled"}
    assert (collection.name, collection.source) == ("treatment.collection", "collection")
    assert set(collection.handlers) == {"collection.load_collected", "collection.trip_started",
                                        "collection.trip_closed", "collection.vehicle_registered"}


async def test_reconsolidation_restates_allocations_and_one_batch_sees_itself(
    treatment: Treatment,
) -> None:
    t = treatment
    batch, trip_a, trip_b, trip = uid("B"), uid("T"), uid("T"), uid("T")
    first, _ = batch_events(batch, "P-1", [(trip_a, 1_000), (trip_b, 2_000)])
    second, dispatched = batch_events(batch, "P-1", [(trip_a, 3_000)])
    # Both consolidations and a trip's start and first load in ONE transaction, as a
    # consumer batch applies them.
    await seed(t, first, second, dispatched,
               TripStarted(trip_id=trip, vehicle_id="V-1", collector_id="C-1", crew=("An",),
                           commune="XA-01", started_at=T0),
               LoadCollected(load_id=uid("L"), trip_id=trip, generator_id="G-1",
                             commune="XA-01", category=Category.FOOD, measure="scale",
                             grams=700, collected_at=T0 + timedelta(minutes=5),
                             device_id="D-1", vehicle_id="V-1", idempotency_key="k-1"))
    async with t.rt.db.session() as session:
        rows = (await session.exec(
            select(Allocation).where(col(Allocation.batch_id) == batch))).all()
        assert [(r.trip_id, r.grams) for r in rows] == [(trip_a, 3_000)]
        started = await session.get(Trip, trip)
        assert started is not None and started.vehicle_id == "V-1"
        assert started.started_at is not None


async def test_openapi_document_lists_the_api(treatment: Treatment) -> None:
    doc = (await treatment.client.get("/openapi.json")).json()
    for path in ("/v1/plants", "/v1/plants/{plant_id}/receipts",
                 "/v1/receipts/{receipt_id}/redirects", "/v1/receipts/{receipt_id}/treatments",
                 "/v1/batches/{batch_id}/certificate", "/v1/batches/{batch_id}/certificate.html",
                 "/v1/loads/{load_id}/fate"):
        assert path in doc["paths"], path
