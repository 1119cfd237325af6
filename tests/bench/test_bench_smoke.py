"""A tiny run of each benchmark on the real broker and database: the result files have
the agreed shape and sane values (speed is not asserted; ``make bench`` measures it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import append, ingest, invoicing, replay
from bench.common import Result

pytestmark = pytest.mark.integration

KEYS = {"name", "value", "unit", "target", "baseline", "ratio", "met"}

def check(results: list[Result], out: Path, names: set[str]) -> dict[str, Result]:
    by_name = {str(r["name"]): r for r in results}
    assert set(by_name) == names
    for name, r in by_name.items():
        on_disk = json.loads((out / f"{name}.json").read_text())
        assert on_disk == r
        assert set(on_disk) == KEYS
        assert isinstance(r["value"], float) and r["value"] > 0, r
        assert r["met"] in (True, False, None)
        if r["baseline"] is not None:
            assert isinstance(r["baseline"], float) and r["baseline"] > 0
            assert isinstance(r["ratio"], float) and r["ratio"] > 0
    return by_name

def test_replay_benchmark(kafka_bootstrap: str, tmp_path: Path) -> None:
    results = replay.run(kafka_bootstrap, events=400, small_events=100, runs=1,
                         results_dir=tmp_path, log=False)
    r = check(results, tmp_path, {"audit_replay_throughput", "audit_replay_peak_rss"})
    assert r["audit_replay_throughput"]["unit"] == "events/s"
    assert 20 < float(str(r["audit_replay_peak_rss"]["value"])) < 4000  # MB

async def test_append_benchmark(kafka_bootstrap: str, postgres_admin_url: str,
                                tmp_path: Path) -> None:
    results = await append.run(postgres_admin_url, kafka_bootstrap, events=100, batch=20,
                               runs=1, results_dir=tmp_path, log=False)
    r = check(results, tmp_path, {"event_store_append", "outbox_relay_publish"})
    assert r["event_store_append"]["target"] == r["event_store_append"]["baseline"]

async def test_invoicing_benchmark(postgres_admin_url: str, tmp_path: Path) -> None:
    results = await invoicing.run(postgres_admin_url, accounts=5, loads=3, runs=1,
                                  results_dir=tmp_path, log=False)
    r = check(results, tmp_path, {"month_end_invoicing"})["month_end_invoicing"]
    assert r["unit"] == "s"

async def test_ingest_benchmark(kafka_bootstrap: str, postgres_admin_url: str,
                                tmp_path: Path) -> None:
    results = await ingest.run(postgres_admin_url, kafka_bootstrap, duration=1.0, batch=20,
                               rate=40.0, runs=1, generators=5, results_dir=tmp_path,
                               log=False)
    names = {"ingest_accepted", "ingest_end_to_end", "ingest_latency_p50",
             "ingest_latency_p99"} | {f"ingest_peak_rss_{s}" for s in ingest.SERVICES}
    r = check(results, tmp_path, names)
    assert r["ingest_accepted"]["unit"] == "loads/s"
    for service in ingest.SERVICES:
        assert 20 < float(str(r[f"ingest_peak_rss_{service}"]["value"])) < 4000
