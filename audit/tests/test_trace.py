"""`wastetrail audit trace` of a hand-made load that went station → plant → two methods."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _auditlog import ProducedLog
from typer.testing import CliRunner
from wastetrail_audit.cli import app


def _trace(log: ProducedLog, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [
        "trace", *args, "--bootstrap", log.bootstrap, "--topic-prefix", log.prefix,
        "--keys-dir", str(log.keys_dir), "--work-dir", str(tmp_path), "--quiet",
    ])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


@pytest.mark.integration
def test_trace_of_a_three_hop_load_gives_hand_computed_numbers(
    hand_log: ProducedLog, tmp_path: Path
) -> None:
    code, out = _trace(hand_log, tmp_path, "L1", "--json")
    assert code == 0
    t = json.loads(out)
    assert t["log_integrity"] == {"ok": True, "failures": 0}
    scan = t["scan"]
    assert (scan["grams"], scan["category"], scan["device_id"], scan["trip_id"]) == (
        30_000, "food", "dev-1", "T1")
    assert scan["actor"] == {"kind": "device", "id": "dev-1", "role": "collector"}
    assert scan["collected_at"] == "2025-03-03T00:35:00Z"
    assert t["generator"]["commune"] == "U1"
    assert t["trip"]["scanned_grams_in_log"] == 100_000
    assert t["trip"]["load_fraction"] == "3/10"
    assert t["trip"]["closed_at"] == "2025-03-03T01:00:00Z"
    (weighing,) = t["weighings"]
    assert (weighing["site_id"], weighing["gross_grams"], weighing["tare_grams"],
            weighing["net_grams"]) == ("st-1", 112_000, 10_000, 102_000)
    (rec,) = t["reconciliations"]
    assert (rec["difference_grams"], rec["discrepancy"]) == (2_000, False)

    b1, b2 = t["batches"]
    # B1: 30/100 × 60 kg = 18 kg of a 100 kg batch → 9/50 of everything that happened to it
    assert (b1["batch_id"], b1["load_share_grams"], b1["fraction_of_batch"]) == (
        "B1", 18_000, "9/50")
    assert b1["dispatches"][0]["seal_number"] == "SEAL-0001"
    assert b1["dispatches"][0]["plant_id"] == "pl-1"
    (r1,) = b1["receipts"]
    assert r1["status"] == "PARTIALLY_REFUSED"
    assert r1["load_share"] == {
        "received": 18_000, "accepted": 16_200, "refused": 1_800,
        "treated": {"composting": 10_800, "sanitary_landfill": 3_600, "direct_landfill": 1_800}}
    assert r1["treatments"][0]["load_share"] == {
        "composting": 10_800, "sanitary_landfill": 3_600, "direct_landfill": 1_800}
    (redirect,) = r1["redirections"]
    assert (redirect["destination_id"], redirect["load_share_grams"]) == ("pl-2", 1_800)
    # B2: 30/100 × 40 kg = 12 kg of a 40 kg batch → 3/10; all incinerated
    assert (b2["batch_id"], b2["load_share_grams"], b2["fraction_of_batch"]) == (
        "B2", 12_000, "3/10")
    assert b2["receipts"][0]["treatments"][0]["load_share"] == {
        "incineration_energy_recovery": 12_000}

    assert t["treatment_split"] == {
        "composting": 10_800, "direct_landfill": 1_800,
        "incineration_energy_recovery": 12_000, "sanitary_landfill": 3_600}
    assert t["treated_grams"] == 28_200 and t["refused_grams"] == 1_800
    # T1 was weighed at 102 kg, allocated 100 kg: L1 keeps 30/100 × 2 kg = 600 g at st-1,
    # and 1 800 g refused at pl-1 are on their way to pl-2 (not weighed there yet).
    assert t["grams"] == 30_600
    leaves = _leaves(t["fate"])
    assert ("at_station", 600) in leaves and ("in_transit", 1_800) in leaves
    assert sum(g for _, g in leaves) == 30_600
    (claim,) = t["claims"]
    assert (claim["claim_id"], claim["status"], claim["treatment_id"]) == ("C1", "credited", "TR1")
    assert t["direct_receipts"] == []
    assert t["notes"] == ["trip T1: 2000 g of its food share were not allocated to any batch"]


def _leaves(node: dict[str, object]) -> list[tuple[object, int]]:
    children = node["children"]
    assert isinstance(children, list)
    if not children:
        grams = node["grams"]
        assert isinstance(grams, int)
        return [(node["kind"], grams)]
    return [leaf for c in children for leaf in _leaves(c)]


@pytest.mark.integration
def test_trace_text_and_unknown_load(hand_log: ProducedLog, tmp_path: Path) -> None:
    code, out = _trace(hand_log, tmp_path / "a", "L3")
    assert code == 0
    assert "LOAD L3  (20,000 g, food)" in out
    assert "2025-03-03 07:45 (UTC+7)" in out  # scanned at 00:45 UTC
    assert "alert AL3 load_not_received on load L3: OPEN" in out
    assert "refused part redirected" in out and "pl-2" in out
    code, out = _trace(hand_log, tmp_path / "b", "NO-SUCH-LOAD")
    assert code == 1
    assert "not found" in out
