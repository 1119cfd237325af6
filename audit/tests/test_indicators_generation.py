"""The generation estimate counts the people of every active generator, not households only.

Collected mass counts every load, organisations' too; estimating generation from household
members alone read a ward with a school or market as collecting more than it generates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from wastetrail_audit.indicators import compute
from wastetrail_audit.projection import ProjectionWriter, connect, finalize
from wastetrail_audit.targets import Targets
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.base import Event
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.enums import Category, CommuneClass, CustomerClass, GeneratorKind
from wastetrail_contracts.events.collection import GeneratorRegistered, LoadCollected

AT = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
TARGETS = Targets.model_validate({
    "province": "demo", "name": "Demo",
    "generation": {"urban_grams_per_person_day": 1000, "rural_grams_per_person_day": 500},
    "targets": {}, "epr_rates": {},
})


def _project(path: Path, events: list[tuple[str, Event]]) -> None:
    writer = ProjectionWriter(path)
    chain = ChainWriter("collection", "wastetrail.collection", 0)
    for offset, (stream, event) in enumerate(events):
        envelope = chain.append(event, stream_id=stream, stream_version=1, actor=SYSTEM_ACTOR,
                                occurred_at=AT, recorded_at=AT, correlation_id=stream)
        writer.add("wastetrail.collection", 0, offset, envelope, event)
    writer.flush()
    writer.close()
    finalize(path)


def test_organisations_people_count_in_generation_but_not_as_households(
    tmp_path: Path,
) -> None:
    def generator(gid: str, kind: GeneratorKind, members: int) -> GeneratorRegistered:
        customer = (CustomerClass.HOUSEHOLD if kind is GeneratorKind.HOUSEHOLD
                    else CustomerClass.ORGANISATION)
        return GeneratorRegistered(
            generator_id=gid, code=f"QR-{gid}", kind=kind, name=gid, commune="U1",
            commune_class=CommuneClass.URBAN, customer_class=customer, members=members)

    load = LoadCollected(
        load_id="L1", trip_id="T1", generator_id="O1", commune="U1", category=Category.FOOD,
        measure="scale", grams=30_000, collected_at=AT, device_id="d1", vehicle_id="v1",
        idempotency_key="k1")
    path = tmp_path / "projection.sqlite"
    _project(path, [("H1", generator("H1", GeneratorKind.HOUSEHOLD, 4)),
                    ("O1", generator("O1", GeneratorKind.ORGANISATION, 26)),
                    ("T1", load)])
    report = compute(connect(path), TARGETS, 2025)
    [u1] = [c for c in report.communes if c.scope == "U1"]
    assert (u1.households, u1.members) == (1, 30)
    assert u1.generated_grams == 30 * 1000 * 365
    assert u1.collected_grams == 30_000
