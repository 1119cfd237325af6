"""`wastetrail audit report` on the hand-made province: every number computed by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from _auditlog import ProducedLog
from openpyxl import load_workbook
from typer.testing import CliRunner
from wastetrail_audit.cli import app
from wastetrail_audit.targets import TARGETS_DIR, load_targets

TARGETS = """
province = "demo"
name = "Tỉnh Mẫu"
[generation]
urban_grams_per_person_day = 1000
rural_grams_per_person_day = 500
[targets.collected_treated_urban]
min_percent = 95
[targets.collected_treated_rural]
min_percent = 90
[targets.direct_landfill_share]
max_percent = 50
[targets.cost_recovery]
min_percent = 100
[epr_rates.pet]
min_percent = 22
source = "Decree 08/2022"
[epr_rates.aluminium]
min_percent = 22
assumed = true
"""


def test_shipped_targets_files_parse() -> None:
    files = sorted(TARGETS_DIR.glob("*.toml"))
    assert {f.stem for f in files} >= {"son-la", "can-tho"}
    for file in files:
        targets = load_targets(file)
        assert targets.province == file.stem
        assert targets.targets["direct_landfill_share"].kind == "max"
        assert targets.epr_rates["aluminium"].assumed  # not in domain.md
    assert str(load_targets(TARGETS_DIR / "can-tho.toml")
               .targets["collected_treated_urban"].percent) == "95.8"


@pytest.fixture(scope="module")
def report_dir(hand_log: ProducedLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    targets = tmp / "demo.toml"
    targets.write_text(TARGETS, encoding="utf-8")
    result = CliRunner().invoke(app, [
        "report", "--year", "2025", "--province", "demo", "--targets", str(targets),
        "--out", str(tmp / "out"), "--bootstrap", hand_log.bootstrap,
        "--topic-prefix", hand_log.prefix, "--keys-dir", str(hand_log.keys_dir),
        "--work-dir", str(tmp / "work"), "--quiet",
    ])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    assert "collected 0.140 t" in result.stdout
    return tmp / "out"


@pytest.mark.integration
def test_report_json_numbers_equal_hand_computed_values(report_dir: Path) -> None:
    r = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert r["log_integrity"]["ok"] is True
    by = {c["scope"]: c for c in r["communes"]}
    u1, r1 = by["U1"], by["R1"]
    # U1: H1 (4) + H2 (2) = 6 persons × 1,000 g × 365 days
    assert (u1["households"], u1["members"], u1["generated_grams"]) == (2, 6, 2_190_000)
    assert r["generation_estimate"]["days"] == 365
    assert u1["collected_grams"] == 80_000  # L1 30 kg + L2 50 kg
    # U1 is 80 % of T1; T1 gave B1 60 kg (U1: 48 kg = 48 % of B1) and B2 40 kg (U1: 32 kg
    # = 80 % of B2). B1: composting 60, sanitary 20, direct 10, refused 10 kg; B2: 40 kg burnt.
    assert u1["treated_by_method_grams"] == {
        "composting": 28_800, "direct_landfill": 4_800,
        "incineration_energy_recovery": 32_000, "sanitary_landfill": 9_600}
    assert u1["refused_at_plant_grams"] == 4_800
    assert u1["percent"] == {
        "collection": 3.65,  # 80,000 / 2,190,000
        "collected_treated": 3.21,  # (75,200 − 4,800) / 2,190,000
        "direct_landfill_share": 6.0,  # 4,800 / 80,000
        "collection_coverage": 100.0,  # both households had a load
        "refusal_rate": 0.0,
        "fee_collection": 93.39,  # (43,200 + 32,400 − 5,000) / 75,600
    }
    assert (u1["billed"], u1["fees_collected"], u1["open_alerts"]) == (75_600, 70_600, 0)
    # R1: H3 (5) + H4 (3) = 8 persons × 500 g × 365; L3 20 kg (20 % of T1) + L4 40 kg (T2)
    assert (r1["members"], r1["generated_grams"], r1["collected_grams"]) == (8, 1_460_000, 60_000)
    assert r1["treated_by_method_grams"] == {
        "composting": 31_200, "direct_landfill": 5_200,
        "incineration_energy_recovery": 8_000, "sanitary_landfill": 10_400}
    assert r1["percent"]["collected_treated"] == 3.4  # 49,600 / 1,460,000
    assert r1["percent"]["direct_landfill_share"] == 8.67  # 5,200 / 60,000
    assert r1["percent"]["collection_coverage"] == 50.0  # H4 was only refused
    assert r1["percent"]["refusal_rate"] == 33.33  # 1 / (2 loads + 1 refusal)
    assert (r1["refusals"], r1["open_alerts"], r1["billed"], r1["fees_collected"]) == (
        1, 1, 21_600, 0)
    targets = {t["indicator"]: t for t in r1["targets"]}
    assert targets["collected_treated"]["target_percent"] == 90.0
    assert targets["collected_treated"]["meets"] is False
    assert targets["direct_landfill_share"]["meets"] is True

    total = r["province_totals"]["all"]
    assert (total["collected_grams"], total["treated_grams"], total["direct_landfill_grams"]) \
        == (140_000, 130_000, 10_000)
    assert total["percent"]["direct_landfill_share"] == 7.14  # 10,000 / 140,000
    assert (total["communes"], total["sorting_communes"]) == (2, 2)
    assert (total["billed"], total["fees_collected"], r["costs"]) == (97_200, 70_600, 150_000)
    assert r["cost_recovery_percent"] == 64.8  # 97,200 / 150,000
    epr = {e["material"]: e for e in r["epr"]}
    # PET: 100 of 1,000 units (20 g each) recycled; cans: 50 of 200 (15 g each)
    assert (epr["pet"]["placed_grams"], epr["pet"]["recycled_grams"],
            epr["pet"]["rate_percent"], epr["pet"]["meets"]) == (20_000, 2_000, 10.0, False)
    assert (epr["aluminium"]["rate_percent"], epr["aluminium"]["meets"],
            epr["aluminium"]["assumed"]) == (25.0, True, True)
    flows = {(f["from"], f["to"], f["category"]): f["grams"] for f in r["flows"]}
    assert flows == {  # every load of the hand-made province is food
        ("households:food", "station:st-1", "food"): 140_000,
        ("station:st-1", "composting", "food"): 60_000,
        ("station:st-1", "sanitary_landfill", "food"): 20_000,
        ("station:st-1", "direct_landfill", "food"): 10_000,
        ("station:st-1", "incineration_energy_recovery", "food"): 40_000,
        ("station:st-1", "refused_at_plant", "food"): 10_000,
    }
    # AL1 (trip T2 not weighed) was cleared; AL3 (load L3 not received) is open; both R1.
    assert {(a["scope"], a["kind"]): (a["raised"], a["cleared"], a["open"])
            for a in r["alarms"]} == {
        ("R1", "load_not_received"): (1, 0, 1), ("R1", "trip_not_weighed"): (1, 1, 0),
        ("province", "load_not_received"): (1, 0, 1),
        ("province", "trip_not_weighed"): (1, 1, 0)}


@pytest.mark.integration
def test_report_csv_xlsx_and_html_hold_the_same_numbers(report_dir: Path) -> None:
    with (report_dir / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cell = {(r["scope"], r["commune"], r["indicator"]): r for r in rows}
    assert cell[("commune", "U1", "collected")]["value"] == "0.08"
    assert cell[("commune", "U1", "direct_landfill_share")]["value"] == "6.0"
    assert cell[("commune", "U1", "direct_landfill_share")]["target_percent"] == "50.0"
    assert cell[("commune", "U1", "direct_landfill_share")]["meets_target"] == "True"
    assert cell[("commune", "R1", "refusal_rate")]["value"] == "33.33"
    assert cell[("commune", "R1", "collected_treated")]["meets_target"] == "False"
    assert cell[("province", "", "cost_recovery")]["value"] == "64.8"
    assert cell[("province", "", "epr_recycling_rate_pet")]["value"] == "10.0"
    assert cell[("commune", "U1", "refused_at_plant")]["label_vi"] == "Bị từ chối tại cơ sở xử lý"
    # Beside the machine value, the value as written for people (vi_VN, as in the HTML).
    assert cell[("province", "", "cost_recovery")]["value_vi"] == "64,80"
    assert cell[("commune", "U1", "treated_composting")]["value_vi"] == "0,029"

    book = load_workbook(report_dir / "report.xlsx")
    sheet = book["Chi tieu - Indicators"]
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    xcell = {(v[0], v[1] or "", v[3]): v for v in values}
    assert xcell[("commune", "R1", "refusal_rate")][6] == 33.33
    assert xcell[("province", "", "cost_recovery")][6] == 64.8
    assert xcell[("commune", "U1", "treated_composting")][6] == 0.029  # 28,800 g
    # Vietnamese headings, numbers stored as numbers with formats, frozen filtered header.
    assert sheet["A1"].value == "Phạm vi / Scope" and sheet["G1"].value == "Giá trị / Value"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    by_indicator = {r[3].value: r[6] for r in sheet.iter_rows(min_row=2)}
    assert by_indicator["cost_recovery"].number_format == '0.00 "%"'
    assert by_indicator["treated_composting"].number_format == '#,##0.000 "t"'
    assert book["EPR"]["A1"].value == "Vật liệu / Material"
    epr = {row[0].value: row for row in book["EPR"].iter_rows(min_row=2)}
    assert epr["aluminium"][3].value == 25.0
    assert [book["Xa - Communes"][f"A{i}"].value for i in (2, 3)] == ["R1", "U1"]

    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 4  # flow diagram + three bar charts
    assert "Sơ đồ dòng chất thải" in html and "Waste flow" in html
    assert "Chôn lấp trực tiếp / Direct landfill" in html
    assert "64,80\u00a0%" in html and "33,33" in html and "93,39" in html
    assert "Trạm trung chuyển / Station st-1 — 0,140\u00a0t" in html
    assert "assumed" in html


@pytest.mark.integration
def test_generation_can_be_estimated_over_the_days_the_log_covers(
    hand_log: ProducedLog, tmp_path: Path
) -> None:
    targets = tmp_path / "demo.toml"
    targets.write_text(TARGETS, encoding="utf-8")
    common = ["report", "--year", "2025", "--province", "demo", "--targets", str(targets),
              "--bootstrap", hand_log.bootstrap, "--topic-prefix", hand_log.prefix,
              "--keys-dir", str(hand_log.keys_dir), "--quiet"]
    result = CliRunner().invoke(app, [*common, "--estimate-over", "covered",
                                      "--out", str(tmp_path / "out"),
                                      "--work-dir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    r = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    # Every load of the hand-made log was collected on 3 March 2025: one day covered.
    assert r["generation_estimate"]["days"] == 1
    by = {c["scope"]: c for c in r["communes"]}
    assert by["U1"]["generated_grams"] == 6 * 1_000 * 1
    assert by["R1"]["generated_grams"] == 8 * 500 * 1
    bad = CliRunner().invoke(app, [*common, "--estimate-over", "month",
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2
