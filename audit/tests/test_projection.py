"""The SQLite projection keeps every payload field: models come back out unchanged."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from _auditlog import LogBuilder, make_keys
from _scenario import filler, hand_scenario
from wastetrail_audit import projection
from wastetrail_audit.projection import TABLE_OF, ProjectionWriter, iter_models
from wastetrail_contracts.base import Event
from wastetrail_contracts.codec import envelope_from_json, parse_payload


def test_every_event_round_trips_through_the_projection(tmp_path: Path) -> None:
    log = hand_scenario(filler(LogBuilder(make_keys()), trips=2, loads_per_trip=2))
    part = tmp_path / "part.sqlite"
    writer = ProjectionWriter(part)
    by_type: dict[type[Event], list[Event]] = defaultdict(list)
    for offset, fields in enumerate(log.envelopes):
        envelope = envelope_from_json(fields)
        event = parse_payload(envelope)
        writer.add("t", 0, offset, envelope, event)
        by_type[type(event)].append(event)
    writer.close()
    target = tmp_path / "projection.sqlite"
    projection.merge([part], target)
    assert projection.finalize(target) == []  # every domain view could be created
    conn = sqlite3.connect(target)
    for model, events in by_type.items():
        assert list(iter_models(conn, model)) == events, model.event_type
    # child tables: the batch allocations and the treatment split, one row per element
    assert conn.execute("SELECT batch_id, trip_id, grams FROM allocations ORDER BY 1, 2"
                        ).fetchall() == [("B1", "T1", 60_000), ("B1", "T2", 40_000),
                                         ("B2", "T1", 40_000)]
    assert conn.execute("SELECT SUM(grams) FROM treatment_split WHERE receipt_id = 'R-B1'"
                        ).fetchone() == (90_000,)
    assert conn.execute("SELECT COUNT(*) FROM loads").fetchone() == (8,)  # 4 + 2 × 2 filler
    assert set(TABLE_OF) >= set(by_type)


def test_times_are_written_in_their_own_zone_even_after_an_equal_utc_time() -> None:
    # The formatted-time cache holds UTC times only: an equal instant in another zone (not
    # something an envelope carries, but the writer must not mix them up) keeps its offset.
    utc = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)
    plus7 = utc.astimezone(timezone(timedelta(hours=7)))
    assert projection._iso(utc) == "2026-03-03T00:30:00Z"
    assert projection._iso(plus7) == "2026-03-03T07:30:00+07:00"
    assert projection._iso(utc) == "2026-03-03T00:30:00Z"
    assert projection._iso(utc.replace(microsecond=5)) == "2026-03-03T00:30:00.000005Z"
