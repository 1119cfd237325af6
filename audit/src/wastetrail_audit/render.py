"""The indicator report written as report.json, report.csv, report.xlsx and report.html.

Labels are Vietnamese with English. Masses are shown in tonnes (three decimals), shares in
percent (two decimals), money in đồng. The CSV and the XLSX hold the same rows: one per
scope (commune, or province / urban / rural) and indicator, with its target when the
province has one.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from openpyxl import Workbook
from openpyxl.styles import Font
from wastetrail_contracts import formats, labels
from wastetrail_contracts.enums import Category

from wastetrail_audit.indicators import (
    METHODS,
    REFUSED,
    AlarmCount,
    Assessment,
    Indicators,
    ProvinceReport,
)
from wastetrail_audit.svg import Bar, bars, flow_diagram, tonnes

# Every label comes from the one catalogue (wastetrail_contracts/locale/vi/.../wastetrail.po).
LABELS: dict[str, tuple[str, str]] = labels.table()
# Short names of the sorting groups for the flow diagram's first column.
SORTING_GROUPS = {c.value: labels.pair(f"group.{c.value}") for c in Category}
HEADER = ["scope", "commune", "commune_class", "indicator", "label_vi", "label_en", "value",
          "unit", "target_percent", "target_kind", "meets_target", "target_assumed",
          "target_source"]
# Column headings people read (the XLSX); report.csv keeps the machine names above and
# adds the value as written for people (value_vi).
HEADER_VI = {
    "scope": "Phạm vi / Scope", "commune": "Xã, phường / Commune",
    "commune_class": "Loại / Class", "indicator": "Mã chỉ tiêu / Indicator",
    "label_vi": "Chỉ tiêu", "label_en": "Indicator", "value": "Giá trị / Value",
    "unit": "Đơn vị / Unit", "target_percent": "Mục tiêu (%) / Target (%)",
    "target_kind": "Loại mục tiêu / Target kind", "meets_target": "Đạt / Meets",
    "target_assumed": "Mục tiêu giả định / Assumed", "target_source": "Nguồn / Source",
}
UNIT_FORMATS = {"đ": formats.XLSX_FORMATS["vnd"], "t": formats.XLSX_FORMATS["t"],
                "%": '0.00 "%"'}


def label(key: str) -> str:
    """``Vietnamese / English`` for a key."""
    vi, en = LABELS.get(key, (key, key))
    return f"{vi} / {en}"


def node_label(node: str) -> str:
    """A flow-diagram node's label."""
    if node == "households":
        return label("households_node")
    if node.startswith("households:"):  # the first column: households, by sorting group
        vi, en = SORTING_GROUPS.get(node.split(":", 1)[1], (node, node))
        return f"{vi} / {en}"
    if node.startswith("station:"):
        return f"Trạm trung chuyển / Station {node.split(':', 1)[1]}"
    return label(node)


def pct(value: Fraction | None) -> float | None:
    """A percentage rounded to two decimals for display and JSON."""
    return None if value is None else round(float(value), 2)


def grams(value: float) -> int:
    """Grams rounded to the gram."""
    return round(value)


def tonnes_value(value: float) -> float:
    """Grams as tonnes, three decimals."""
    return round(value / 1_000_000, 3)


@dataclass(frozen=True)
class Row:
    """One line of report.csv / the XLSX indicator sheet."""

    scope: str
    commune: str
    commune_class: str
    indicator: str
    label_vi: str
    label_en: str
    value: int | float | None
    unit: str
    target_percent: float | None = None
    target_kind: str = ""
    meets_target: bool | None = None
    target_assumed: bool | None = None
    target_source: str = ""

    def cells(self) -> list[object]:
        """The row's values in HEADER order."""
        return [getattr(self, h) for h in HEADER]


def _rows_of(scope: Indicators, assessments: list[Assessment]) -> list[Row]:
    kind = "commune" if not scope.scope.startswith("province") else scope.scope
    commune = scope.scope if kind == "commune" else ""
    by_indicator = {a.indicator: a for a in assessments}
    rates = scope.rates()

    def row(key: str, value: int | float | None, unit: str, name: str | None = None) -> Row:
        vi, en = LABELS.get(name or key, (key, key))
        a = by_indicator.get(key)
        return Row(
            scope=kind, commune=commune, commune_class=scope.commune_class, indicator=key,
            label_vi=vi, label_en=en, value=value, unit=unit,
            target_percent=float(a.target.percent) if a else None,
            target_kind=a.target.kind if a else "", meets_target=a.meets if a else None,
            target_assumed=a.target.assumed if a else None,
            target_source=a.target.source if a else "",
        )

    rows = [
        row("households", scope.households, "hộ / households"),
        row("members", scope.members, "người / persons"),
        row("households_served", scope.households_served, "hộ / households"),
        row("generated", tonnes_value(scope.generated_grams), "t"),
        row("collected", tonnes_value(scope.collected_grams), "t"),
        row("treated", tonnes_value(scope.treated_grams), "t"),
        *(row(f"treated_{m}", tonnes_value(scope.treated.get(m, 0.0)), "t", m) for m in METHODS),
        row(REFUSED, tonnes_value(scope.refused_at_plant_grams), "t"),
        row("collection", pct(rates["collection"]), "%"),
        row("collected_treated", pct(rates["collected_treated"]), "%"),
        row("direct_landfill_share", pct(rates["direct_landfill_share"]), "%"),
        row("collection_coverage", pct(rates["collection_coverage"]), "%"),
        row("loads", scope.loads, "lượt / loads"),
        row("refusals", scope.refusals, "lượt / refusals"),
        row("refusal_rate", pct(rates["refusal_rate"]), "%"),
        row("sorting_communes", scope.sorting_communes, "xã / communes"),
        row("open_alerts", scope.open_alerts, "cảnh báo / alerts"),
        row("billed", scope.billed, "đ"),
        row("fees_collected", scope.fees_collected, "đ"),
        row("fee_collection", pct(rates["fee_collection"]), "%"),
    ]
    return rows


def indicator_rows(report: ProvinceReport) -> list[Row]:
    """Every row of report.csv."""
    rows: list[Row] = []
    for scope in [*report.communes, report.urban, report.rural, report.total]:
        rows.extend(_rows_of(scope, report.assessments.get(scope.scope, [])))
    recovery = next((a for a in report.assessments.get("province", [])
                     if a.indicator == "cost_recovery"), None)
    vi, en = LABELS["costs"]
    rows.append(Row("province", "", "all", "costs", vi, en, report.costs, "đ"))
    vi, en = LABELS["cost_recovery"]
    rows.append(Row(
        "province", "", "all", "cost_recovery", vi, en, pct(report.cost_recovery), "%",
        float(recovery.target.percent) if recovery else None,
        recovery.target.kind if recovery else "", recovery.meets if recovery else None,
        recovery.target.assumed if recovery else None,
        recovery.target.source if recovery else "",
    ))
    vi, en = LABELS["alarms"]
    parts = (("raised", "phát sinh", "raised"), ("cleared", "đã xử lý", "cleared"),
             ("open", "còn mở", "open"))
    for where, kind, n in alarm_items(report):
        level, commune = ("province", "") if where == "province" else ("commune", where)
        kvi, ken = LABELS.get(kind, (kind, kind))
        for part, pvi, pen in parts:
            rows.append(Row(level, commune, "", f"alarms_{kind}_{part}",
                            f"{vi}: {kvi} ({pvi})", f"{en}: {ken} ({pen})",
                            getattr(n, part), "cảnh báo / alarms"))
    for e in report.epr:
        vi, en = LABELS["epr_recycling_rate"]
        mvi, men = LABELS.get(e.material, (e.material, e.material))
        rows.append(Row(
            "province", "", "all", f"epr_recycling_rate_{e.material}", f"{vi}: {mvi}",
            f"{en}: {men}", pct(e.rate), "%",
            float(e.target.percent) if e.target else None, e.target.kind if e.target else "",
            e.meets, e.target.assumed if e.target else None,
            e.target.source if e.target else "",
        ))
    return rows


def _scope_json(scope: Indicators, assessments: list[Assessment]) -> dict[str, object]:
    rates = scope.rates()
    return {
        "scope": scope.scope,
        "commune_class": scope.commune_class,
        "households": scope.households,
        "members": scope.members,
        "households_served": scope.households_served,
        "generated_grams": scope.generated_grams,
        "collected_grams": scope.collected_grams,
        "collected_tonnes": tonnes_value(scope.collected_grams),
        "treated_grams": grams(scope.treated_grams),
        "treated_by_method_grams": {m: grams(g) for m, g in sorted(scope.treated.items())},
        "direct_landfill_grams": grams(scope.direct_landfill_grams),
        "refused_at_plant_grams": grams(scope.refused_at_plant_grams),
        "loads": scope.loads,
        "refusals": scope.refusals,
        "communes": scope.communes,
        "sorting_communes": scope.sorting_communes,
        "open_alerts": scope.open_alerts,
        "billed": scope.billed,
        "fees_collected": scope.fees_collected,
        "percent": {k: pct(v) for k, v in rates.items()},
        "targets": [
            {"indicator": a.indicator, "value_percent": pct(a.value), "kind": a.target.kind,
             "target_percent": float(a.target.percent), "meets": a.meets,
             "assumed": a.target.assumed, "source": a.target.source}
            for a in assessments
        ],
    }


def report_json(report: ProvinceReport, integrity: dict[str, object]) -> dict[str, object]:
    """report.json."""
    t = report.targets
    return {
        "province": report.province,
        "name": report.name,
        "year": report.year,
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "log_integrity": integrity,
        "generation_estimate": {
            **t.generation.model_dump(mode="json"),
            "days": report.generation_days,
        },
        "communes": [_scope_json(c, report.assessments.get(c.scope, [])) for c in report.communes],
        "province_totals": {
            "all": _scope_json(report.total, report.assessments.get("province", [])),
            "urban": _scope_json(report.urban, report.assessments.get("province:urban", [])),
            "rural": _scope_json(report.rural, report.assessments.get("province:rural", [])),
        },
        "costs": report.costs,
        "cost_recovery_percent": pct(report.cost_recovery),
        "epr": [
            {"material": e.material, "placed_grams": e.placed_grams,
             "recycled_grams": e.recycled_grams, "rate_percent": pct(e.rate),
             "mandatory_percent": float(e.target.percent) if e.target else None,
             "meets": e.meets, "assumed": e.target.assumed if e.target else None,
             "source": e.target.source if e.target else None}
            for e in report.epr
        ],
        "flows": [
            {"from": a, "to": b, "category": c, "grams": grams(g)}
            for (a, b, c), g in sorted(report.flows.items()) if g > 0
        ],
        "alarms": alarm_rows(report),
    }


def alarm_items(report: ProvinceReport) -> list[tuple[str, str, AlarmCount]]:
    """(scope, kind, counts) of the year's custody alarms: communes first, then province."""
    return [(scope, kind, n)
            for scope, kinds in sorted(report.alarms.items(),
                                       key=lambda kv: (kv[0] == "province", kv[0]))
            for kind, n in kinds.items()]


def alarm_rows(report: ProvinceReport) -> list[dict[str, object]]:
    """Custody alarms raised in the year per scope and kind: raised, cleared, still open."""
    return [{"scope": scope, "kind": kind, "raised": n.raised, "cleared": n.cleared,
             "open": n.open} for scope, kind, n in alarm_items(report)]


def write_csv(path: Path, rows: list[Row]) -> None:
    """report.csv (UTF-8 with BOM so spreadsheet programs read the Vietnamese)."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*HEADER, "value_vi"])
        for row in rows:
            writer.writerow([*("" if v is None else v for v in row.cells()), cell(row)])


def write_xlsx(path: Path, report: ProvinceReport, rows: list[Row]) -> None:
    """report.xlsx: the indicator rows, a commune table and the EPR table."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Chi tieu - Indicators"
    sheet.append([HEADER_VI[h] for h in HEADER])
    value_column = HEADER.index("value") + 1
    for row in rows:
        sheet.append(row.cells())
        sheet.cell(sheet.max_row, value_column).number_format = UNIT_FORMATS.get(
            row.unit, formats.XLSX_FORMATS["count"])
    communes = book.create_sheet("Xa - Communes")
    keys = ["collected", "treated", "collected_treated", "direct_landfill_share",
            "collection_coverage", "refusal_rate", "open_alerts", "billed", "fees_collected"]
    communes.append([HEADER_VI["commune"], HEADER_VI["commune_class"],
                     *(label(k) for k in keys)])
    by_scope: dict[tuple[str, str], dict[str, object]] = {}
    for r in rows:
        by_scope.setdefault((r.scope, r.commune), {})[r.indicator] = r.value
    for scope in [*report.communes, report.urban, report.rural, report.total]:
        key = (scope.scope, "") if scope.scope.startswith("province") else ("commune", scope.scope)
        values = by_scope.get(key, {})
        communes.append([scope.scope, scope.commune_class, *(values.get(k) for k in keys)])
    epr = book.create_sheet("EPR")
    epr.append(["Vật liệu / Material", "Đưa ra thị trường (g) / Placed (g)",
                "Đã tái chế (g) / Recycled (g)", "Tỷ lệ (%) / Rate (%)",
                "Bắt buộc (%) / Mandatory (%)", "Đạt / Meets", "Giả định / Assumed"])
    for e in report.epr:
        epr.append([e.material, e.placed_grams, e.recycled_grams, pct(e.rate),
                    float(e.target.percent) if e.target else None, e.meets,
                    e.target.assumed if e.target else None])
    for ws in book.worksheets:
        for heading in ws[1]:
            heading.font = Font(bold=True)
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = ws.dimensions
        for column in ws.columns:
            longest = max(len(str(c.value)) if c.value is not None else 0 for c in column)
            ws.column_dimensions[column[0].column_letter].width = min(max(10, longest + 2), 60)
    book.save(path)


def cell(row: Row) -> str:
    """A row's value as a person reads it (vi_VN: ``12,345`` t, ``1.806.000 ₫``)."""
    if row.value is None:
        return "–"
    if row.unit == "đ":
        return formats.money(int(row.value))
    if row.unit == "t":
        return formats.number(row.value, 3)
    if row.unit == "%":
        return formats.number(row.value, 2)
    return formats.number(row.value)


def write_html(path: Path, report: ProvinceReport, rows: list[Row],
               integrity: dict[str, object]) -> None:
    """report.html: self-contained, inline SVG charts."""
    env = Environment(loader=PackageLoader("wastetrail_audit", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    node_labels = {n: node_label(n) for a, b, _c in report.flows for n in (a, b)}
    category_labels = {c: label(c) for _a, _b, c in report.flows}
    treated_bars = []
    for scope in [*report.communes, report.urban, report.rural]:
        a = next((x for x in report.assessments.get(scope.scope, [])
                  if x.indicator == "collected_treated"), None)
        treated_bars.append(Bar(
            f"{scope.scope} ({label(scope.commune_class)})",
            pct(scope.rates()["collected_treated"]),
            float(a.target.percent) if a else None, "min", a.target.assumed if a else False))
    landfill_target = report.targets.targets.get("direct_landfill_share")
    landfill_bars = [
        Bar(f"{s.scope} ({label(s.commune_class)})", pct(s.rates()["direct_landfill_share"]),
            float(landfill_target.percent) if landfill_target else None,
            landfill_target.kind if landfill_target else "max")
        for s in [*report.communes, report.total]
    ]
    epr_bars = [
        Bar(label(e.material), pct(e.rate), float(e.target.percent) if e.target else None,
            "min", e.target.assumed if e.target else False)
        for e in report.epr
    ]
    assumed = [(k, t) for k, t in report.targets.targets.items() if t.assumed]
    assumed += [(f"epr_rates.{k}", t) for k, t in report.targets.epr_rates.items() if t.assumed]
    html = env.get_template("report.html.j2").render(
        report=report, rows=rows, integrity=integrity, label=label, tonnes=tonnes,
        cell=cell, fmt=formats,
        flow_svg=flow_diagram(report.flows, node_labels, category_labels),
        alarms=alarm_items(report),
        treated_svg=bars(treated_bars), landfill_svg=bars(landfill_bars),
        epr_svg=bars(epr_bars), assumed=assumed, pct=pct,
        scopes=[*report.communes, report.urban, report.rural, report.total],
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    path.write_text(html, encoding="utf-8")


def write_report(out: Path, report: ProvinceReport, integrity: dict[str, object]
                 ) -> dict[str, Path]:
    """All four files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = indicator_rows(report)
    paths = {name: out / f"report.{name}" for name in ("json", "csv", "xlsx", "html")}
    paths["json"].write_text(
        json.dumps(report_json(report, integrity), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8")
    write_csv(paths["csv"], rows)
    write_xlsx(paths["xlsx"], report, rows)
    write_html(paths["html"], report, rows, integrity)
    return paths


def rows_as_dicts(rows: list[Row]) -> list[dict[str, object]]:
    """Rows as dicts (handy for tests and JSON)."""
    return [asdict(r) for r in rows]
