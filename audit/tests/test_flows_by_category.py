"""The indicator report draws the flow by sorting category, and counts custody alarms.

A hand-computed mixed trip (a projection built directly, no broker): trip TM carries, for
commune U1, H1's 30 kg of food and 10 kg of recyclables, and for commune R1, H2's 20 kg of
food. At station st-1 its food share (50 kg) goes into batch BF → compost plant pl-c
(composted 50 kg); its recyclable share (10 kg) into batch BR → materials recovery pl-r
(recycled 10 kg). By category, U1: food 30/50 × 50 = 30 kg composted, recyclables 10/10 ×
10 = 10 kg recycled; R1: food 20/50 × 50 = 20 kg composted and nothing recycled. Spreading
each commune over the whole trip instead (the old rule) would have sent 20/60 × 10 kg ≈
3.3 kg of R1's food into recycling.

Alarms: LNR (load_not_received on TM, commune U1) raised and cleared; HELD
(waste_held_at_station on TM) raised and open; UNT (accepted_not_treated on receipt R-BF,
commune of the plant: R1) raised and cleared.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from wastetrail_audit.indicators import NOT_CONSOLIDATED, ProvinceReport, compute
from wastetrail_audit.projection import ProjectionWriter, connect, finalize
from wastetrail_audit.render import write_report
from wastetrail_audit.targets import Targets
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.base import Event
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    AlertKind,
    Category,
    CommuneClass,
    CustomerClass,
    GeneratorKind,
    TreatmentMethod,
)
from wastetrail_contracts.events.collection import (
    GeneratorRegistered,
    LoadCollected,
    TripStarted,
)
from wastetrail_contracts.events.custody import CustodyAlertCleared, CustodyAlertRaised
from wastetrail_contracts.events.transfer import Allocation, BatchConsolidated
from wastetrail_contracts.events.treatment import BatchReceived, TreatmentRecorded

AT = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
TARGETS = Targets.model_validate({
    "province": "demo", "name": "Demo",
    "generation": {"urban_grams_per_person_day": 1000, "rural_grams_per_person_day": 500},
    "targets": {}, "epr_rates": {},
})
FOOD, RECYCLABLE = Category.FOOD, Category.RECYCLABLE


def _events() -> list[tuple[str, str, Event]]:
    """(service, stream id, event) of the mixed trip, in log order."""
    def load(load_id: str, gen: str, commune: str, category: Category, grams: int
             ) -> tuple[str, str, Event]:
        return ("collection", load_id, LoadCollected(
            load_id=load_id, trip_id="TM", generator_id=gen, commune=commune,
            category=category, measure="scale", grams=grams, collected_at=AT, device_id="d1",
            vehicle_id="v1", idempotency_key=load_id))

    def batch(batch_id: str, category: Category, grams: int) -> tuple[str, str, Event]:
        return ("transfer", batch_id, BatchConsolidated(
            batch_id=batch_id, station_id="st-1", category=category,
            allocations=(Allocation(trip_id="TM", grams=grams),), total_grams=grams,
            seal_number=f"S-{batch_id}"))

    def received(receipt: str, batch_id: str, plant: str, category: Category, grams: int
                 ) -> tuple[str, str, Event]:
        return ("treatment", receipt, BatchReceived(
            receipt_id=receipt, plant_id=plant, batch_id=batch_id, category=category,
            declared_grams=grams, received_grams=grams, accepted_grams=grams, refused_grams=0,
            status=AcceptanceStatus.ACCEPTED, received_at=AT))

    def treated(tid: str, receipt: str, batch_id: str, plant: str, method: TreatmentMethod,
                grams: int) -> tuple[str, str, Event]:
        return ("treatment", receipt, TreatmentRecorded(
            treatment_id=tid, plant_id=plant, receipt_id=receipt, batch_id=batch_id,
            accepted_grams=grams, methods={method: grams}, treated_at=AT))

    def alarm(alert_id: str, kind: AlertKind, subject_kind: str, subject: str,
              commune: str | None, service: str) -> tuple[str, str, Event]:
        return (service, subject, CustodyAlertRaised(
            alert_id=alert_id, kind=kind, subject_kind=subject_kind,  # type: ignore[arg-type]
            subject_id=subject, detail="test", raised_at=AT, commune=commune))

    def cleared(alert_id: str, kind: AlertKind, subject_kind: str, subject: str,
                service: str) -> tuple[str, str, Event]:
        return (service, subject, CustodyAlertCleared(
            alert_id=alert_id, kind=kind, subject_kind=subject_kind,  # type: ignore[arg-type]
            subject_id=subject, resolution="test", cleared_at=AT + timedelta(hours=1)))

    generators: list[tuple[str, str, Event]] = [
        ("collection", gid, GeneratorRegistered(
            generator_id=gid, code=f"QR-{gid}", kind=GeneratorKind.HOUSEHOLD, name=gid,
            commune=commune, commune_class=cls, customer_class=CustomerClass.HOUSEHOLD,
            members=4))
        for gid, commune, cls in (("H1", "U1", CommuneClass.URBAN),
                                  ("H2", "R1", CommuneClass.RURAL))]
    return [
        *generators,
        ("collection", "TM", TripStarted(trip_id="TM", vehicle_id="v1", collector_id="c1",
                                         crew=("a",), commune="U1", started_at=AT)),
        load("L1", "H1", "U1", FOOD, 30_000), load("L2", "H1", "U1", RECYCLABLE, 10_000),
        load("L3", "H2", "R1", FOOD, 20_000),
        alarm("LNR", AlertKind.LOAD_NOT_RECEIVED, "trip", "TM", "U1", "transfer"),
        cleared("LNR", AlertKind.LOAD_NOT_RECEIVED, "trip", "TM", "transfer"),
        batch("BF", FOOD, 50_000), batch("BR", RECYCLABLE, 10_000),
        alarm("HELD", AlertKind.WASTE_HELD_AT_STATION, "trip", "TM", None, "transfer"),
        received("R-BF", "BF", "pl-c", FOOD, 50_000),
        received("R-BR", "BR", "pl-r", RECYCLABLE, 10_000),
        alarm("UNT", AlertKind.ACCEPTED_NOT_TREATED, "receipt", "R-BF", "R1", "treatment"),
        treated("TR-F", "R-BF", "BF", "pl-c", TreatmentMethod.COMPOSTING, 50_000),
        cleared("UNT", AlertKind.ACCEPTED_NOT_TREATED, "receipt", "R-BF", "treatment"),
        treated("TR-R", "R-BR", "BR", "pl-r", TreatmentMethod.RECYCLING, 10_000),
    ]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ProvinceReport:
    path = tmp_path_factory.mktemp("mixed") / "projection.sqlite"
    writer = ProjectionWriter(path)
    chains: dict[str, ChainWriter] = {}
    offsets: dict[str, int] = {}
    for service, stream, event in _events():
        topic = f"wastetrail.{service}.events"
        chain = chains.setdefault(service, ChainWriter(service, topic, 0))
        envelope = chain.append(event, stream_id=stream, stream_version=1, actor=SYSTEM_ACTOR,
                                occurred_at=AT, recorded_at=AT, correlation_id=stream)
        offsets[service] = offsets.get(service, -1) + 1
        writer.add(topic, 0, offsets[service], envelope, event)
    writer.close()
    assert finalize(path) == []
    return compute(connect(path), TARGETS, 2025)


def test_each_category_is_treated_only_through_its_own_batches(report: ProvinceReport) -> None:
    by = {c.scope: c for c in report.communes}
    assert by["U1"].treated == {"composting": 30_000, "recycling": 10_000}
    assert by["R1"].treated == {"composting": 20_000}  # none of R1's food was "recycled"


def test_the_flow_diagram_keeps_the_sorting_groups_apart(report: ProvinceReport) -> None:
    assert report.flows == {
        ("households:food", "station:st-1", "food"): 50_000,
        ("station:st-1", "composting", "food"): 50_000,
        ("households:recyclable", "station:st-1", "recyclable"): 10_000,
        ("station:st-1", "recycling", "recyclable"): 10_000,
    }
    assert not [k for k in report.flows if k[2] == "food" and k[1] == "recycling"]
    assert NOT_CONSOLIDATED not in {b for _a, b, _c in report.flows}


def test_alarms_are_counted_per_kind_raised_cleared_and_open(report: ProvinceReport) -> None:
    province = {k: (n.raised, n.cleared, n.open) for k, n in report.alarms["province"].items()}
    assert province == {"accepted_not_treated": (1, 1, 0), "load_not_received": (1, 1, 0),
                        "waste_held_at_station": (1, 0, 1)}
    # HELD names no commune: it counts for the trip's (U1); UNT for the plant's (R1).
    assert {k: n.open for k, n in report.alarms["U1"].items()} == {
        "load_not_received": 0, "waste_held_at_station": 1}
    assert {k: n.raised for k, n in report.alarms["R1"].items()} == {"accepted_not_treated": 1}
    assert {c.scope: c.open_alerts for c in report.communes} == {"R1": 0, "U1": 1}


def test_the_rendered_report_shows_categories_and_alarms(report: ProvinceReport,
                                                         tmp_path: Path) -> None:
    paths = write_report(tmp_path, report, {"ok": True, "events": 0, "failures": 0,
                                            "checkpoints_verified": 0, "source": "test"})
    r = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert {(f["from"], f["to"], f["category"]) for f in r["flows"]} == {
        (a, b, c) for a, b, c in report.flows}
    assert {"scope": "province", "kind": "waste_held_at_station", "raised": 1, "cleared": 0,
            "open": 1} in r["alarms"]
    html = paths["html"].read_text(encoding="utf-8")
    assert 'data-category="food"' in html and 'data-category="recyclable"' in html
    assert "Chất thải thực phẩm / Food waste: Trạm trung chuyển / Station st-1 → " \
           "Ủ phân compost / Composting" in html
    assert "Food waste: Trạm trung chuyển / Station st-1 → Tái chế" not in html
    assert "Rác lưu tại trạm quá hạn / Waste held at a station too long" in html
    with paths["csv"].open(encoding="utf-8-sig") as handle:
        csv_text = handle.read()
    assert "alarms_waste_held_at_station_open" in csv_text
