"""A trip hauled straight to a plant (no station): trace and report follow it (no broker)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from _auditlog import LogBuilder, make_keys
from _scenario import COLLECTOR, PLANT, _load, at
from wastetrail_audit import projection
from wastetrail_audit.indicators import compute
from wastetrail_audit.projection import ProjectionWriter
from wastetrail_audit.targets import Generation, Targets
from wastetrail_audit.trace import trace_load
from wastetrail_contracts.codec import envelope_from_json, parse_payload
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    Category,
    CommuneClass,
    CustodySite,
    CustomerClass,
    GeneratorKind,
    TreatmentMethod,
)
from wastetrail_contracts.events.collection import GeneratorRegistered, TripClosed, TripStarted
from wastetrail_contracts.events.transfer import TripWeighed
from wastetrail_contracts.events.treatment import BatchReceived, TreatmentRecorded


def _projection(tmp_path: Path) -> sqlite3.Connection:
    log = LogBuilder(make_keys())
    log.emit(GeneratorRegistered(
        generator_id="HD", code="QR-HD", kind=GeneratorKind.HOUSEHOLD, name="Hộ D",
        commune="D1", commune_class=CommuneClass.RURAL, customer_class=CustomerClass.HOUSEHOLD,
        members=2), "HD", at(0))
    log.emit(TripStarted(trip_id="T3", vehicle_id="veh-1", collector_id="col-1",
                         crew=("crew-a",), commune="D1", started_at=at(0)), "T3", at(0), COLLECTOR)
    _load(log, "LD1", "T3", "HD", "D1", 6_000, 5, category=Category.RECYCLABLE)
    _load(log, "LD2", "T3", "HD", "D1", 4_000, 6, category=Category.RECYCLABLE)
    log.emit(TripClosed(trip_id="T3", vehicle_id="veh-1", declared_total_grams=10_000,
                        scanned_total_grams=10_000, load_count=2, closed_at=at(20)),
             "T3", at(20), COLLECTOR)
    log.emit(TripWeighed(trip_id="T3", vehicle_id="veh-1", site=CustodySite.PLANT,
                         site_id="pl-1", gross_grams=20_000, tare_grams=10_000, net_grams=10_000,
                         tare_source="registered", weighed_in_at=at(60)),
             "T3", at(60), PLANT, service="treatment")
    log.emit(BatchReceived(receipt_id="R-T3", plant_id="pl-1", trip_id="T3",
                           category=Category.RECYCLABLE, declared_grams=10_000,
                           received_grams=10_000, accepted_grams=10_000, refused_grams=0,
                           status=AcceptanceStatus.ACCEPTED, received_at=at(60)),
             "R-T3", at(60), PLANT)
    log.emit(TreatmentRecorded(
        treatment_id="TR3", plant_id="pl-1", receipt_id="R-T3", trip_id="T3",
        accepted_grams=10_000,
        methods={TreatmentMethod.RECYCLING: 7_000, TreatmentMethod.SANITARY_LANDFILL: 3_000},
        treated_at=at(120)), "R-T3", at(120), PLANT)
    part = tmp_path / "part.sqlite"
    writer = ProjectionWriter(part)
    for offset, fields in enumerate(log.envelopes):
        envelope = envelope_from_json(fields)
        writer.add("t", 0, offset, envelope, parse_payload(envelope))
    writer.close()
    target = tmp_path / "projection.sqlite"
    projection.merge([part], target)
    projection.finalize(target)
    return sqlite3.connect(target)


def test_trace_of_a_direct_haul_load(tmp_path: Path) -> None:
    trace = trace_load(_projection(tmp_path), "LD1").data
    assert trace["batches"] == []
    (receipt,) = trace["direct_receipts"]  # type: ignore[misc]
    # LD1 is 6 of the trip's 10 kg: 3/5 of everything received and treated
    assert receipt["load_share"] == {"received": 6_000, "accepted": 6_000, "refused": 0,
                                     "treated": {"recycling": 4_200, "sanitary_landfill": 1_800}}
    assert trace["treatment_split"] == {"recycling": 4_200, "sanitary_landfill": 1_800}
    assert trace["weighings"][0]["site"] == "plant"  # type: ignore[index]
    assert trace["notes"] == []


def test_report_counts_direct_haul_by_method(tmp_path: Path) -> None:
    targets = Targets(province="demo", generation=Generation(
        urban_grams_per_person_day=1_000, rural_grams_per_person_day=500))
    report = compute(_projection(tmp_path), targets, 2025)
    (d1,) = report.communes
    assert (d1.scope, d1.commune_class, d1.collected_grams) == ("D1", "rural", 10_000)
    assert d1.treated == {"recycling": 7_000.0, "sanitary_landfill": 3_000.0}
    assert d1.generated_grams == 2 * 500 * 365
    assert report.flows == {("households:recyclable", "direct_haul", "recyclable"): 10_000.0,
                            ("direct_haul", "recycling", "recyclable"): 7_000.0,
                            ("direct_haul", "sanitary_landfill", "recyclable"): 3_000.0}
