"""Inline SVG charts for the HTML report: a flow diagram and bars against targets.

Plain strings, no JavaScript and no external files, so the report opens anywhere and can
be archived as one file. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from wastetrail_contracts import formats

GREEN, RED, GREY, BLUE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"


tonnes = formats.tonnes  # grams as tonnes, the Vietnamese way: ``0,140 t``


# One colour per sorting group (Circular 02/2022 bags: green for food, yellow for other).
CATEGORY_COLOURS = {"food": "#2e7d32", "recyclable": "#1565c0", "other": "#b8860b",
                    "hazardous": "#c62828", "bulky": "#6a1b9a"}


def _category_rank(category: str) -> tuple[int, str]:
    order = list(CATEGORY_COLOURS)
    return (order.index(category) if category in order else len(order), category)


def _columns(flows: Mapping[tuple[str, str, str], float]) -> list[list[str]]:
    """Sources, stations, outcomes. The outer columns are ordered by the sorting group
    that carries most of each node (then by size), so each colour runs mostly level and
    the bands cross as little as possible; stations keep their names' order."""
    sources = {a for a, _, _ in flows}
    targets = {b for _, b, _ in flows}
    through: dict[str, dict[str, float]] = {}
    for (a, b, cat), grams in flows.items():
        for node in (a, b):
            through.setdefault(node, {})[cat] = through.get(node, {}).get(cat, 0.0) + grams

    def by_group(node: str) -> tuple[tuple[int, str], float, str]:
        cats = through[node]
        main = max(cats, key=lambda c: (cats[c], c))
        return _category_rank(main), -sum(cats.values()), node

    return [c for c in (sorted(sources - targets, key=by_group), sorted(sources & targets),
                        sorted(targets - sources, key=by_group)) if c]


def flow_diagram(
    flows: Mapping[tuple[str, str, str], float], label: Mapping[str, str],
    category_label: Mapping[str, str] | None = None, width: int = 1100,
) -> str:
    """A three-column flow (Sankey) diagram: households → station → treatment method.

    ``flows`` are keyed (from, to, category); each category is drawn in its own colour and
    its links stay separate through the station, so a reader follows food to composting
    and recyclables to recycling. A legend names the colours.
    """
    flows = {k: g for k, g in flows.items() if g > 0}
    columns = _columns(flows)
    if not columns:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" '
                'role="img"><text x="10" y="25">Không có dữ liệu / no data</text></svg>')
    # A node is as big as the larger of what flows in and what flows out of it.
    outflow: dict[str, float] = {}
    inflow: dict[str, float] = {}
    for (a, b, _c), grams in flows.items():
        outflow[a] = outflow.get(a, 0.0) + grams
        inflow[b] = inflow.get(b, 0.0) + grams
    size = {n: max(outflow.get(n, 0.0), inflow.get(n, 0.0)) for n in outflow.keys() | inflow}
    categories = sorted({c for _, _, c in flows}, key=_category_rank)
    legend_h = 24
    height, gap, node_w = 420, 14, 18
    biggest = max(sum(size[n] for n in col) for col in columns) or 1.0
    most = max(len(col) for col in columns)
    scale = (height - gap * (most - 1) - 40) / biggest
    # Labels of the first column stand left of their nodes, the others right of theirs.
    left, right = 330, 400
    xs = [left + i * (width - left - right) / max(1, len(columns) - 1)
          for i in range(len(columns))]
    pos: dict[str, tuple[float, float, float]] = {}  # node → (x, y, h)
    parts: list[str] = []
    for x, col in zip(xs, columns, strict=True):
        y = 20.0 + legend_h
        for node in col:
            h = max(2.0, size[node] * scale)
            pos[node] = (x, y, h)
            y += h + gap
    rank = {c: i for i, c in enumerate(categories)}
    out_used: dict[str, float] = {}
    in_used: dict[str, float] = {}
    # Links leave and enter each node grouped by category, so a colour stays one band.
    for (a, b, cat), grams in sorted(
            flows.items(), key=lambda kv: (rank[kv[0][2]], pos[kv[0][0]][1], pos[kv[0][1]][1])):
        ax, ay, _ = pos[a]
        bx, by, _ = pos[b]
        h = max(1.0, grams * scale)
        y0 = ay + out_used.get(a, 0.0) + h / 2
        y1 = by + in_used.get(b, 0.0) + h / 2
        out_used[a] = out_used.get(a, 0.0) + h
        in_used[b] = in_used.get(b, 0.0) + h
        x0, x1 = ax + node_w, bx
        mid = (x0 + x1) / 2
        curve = f"M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
        colour = CATEGORY_COLOURS.get(cat, GREY)
        name = (category_label or {}).get(cat, cat)
        parts.append(
            f'<path d="{curve}" data-category="{escape(cat)}" '
            f'stroke="{colour}" stroke-opacity="0.45" stroke-width="{h:.1f}" fill="none">'
            f"<title>{escape(name)}: {escape(label.get(a, a))} → {escape(label.get(b, b))}: "
            f"{escape(tonnes(grams))}</title></path>"
        )
    first = set(columns[0]) if len(columns) > 1 else set()
    middle = set(columns[1]) if len(columns) > 2 else set()
    for node, (x, y, h) in pos.items():
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" '
                     f'fill="#455a64"/>')
        # First column: left of the node; middle: above it (the bands leave no room
        # beside it); last: right of it. A white halo keeps a label readable on a band.
        if node in first:
            tx, ty, anchor = x - 6, y + min(h, 24) / 2 + 4, "end"
        elif node in middle:
            tx, ty, anchor = x + node_w / 2, y - 3, "middle"
        else:
            tx, ty, anchor = x + node_w + 4, y + min(h, 24) / 2 + 4, "start"
        parts.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="12" '
                     f'text-anchor="{anchor}" stroke="#fff" stroke-width="3" '
                     f'paint-order="stroke">{escape(label.get(node, node))} — '
                     f"{escape(tonnes(size[node]))}</text>")
    lx = 20.0
    for cat in categories:
        name = (category_label or {}).get(cat, cat)
        parts.append(f'<rect x="{lx:.1f}" y="6" width="14" height="12" '
                     f'fill="{CATEGORY_COLOURS.get(cat, GREY)}" fill-opacity="0.7"/>'
                     f'<text x="{lx + 18:.1f}" y="16" font-size="12">{escape(name)}</text>')
        lx += 34 + 6.5 * len(name)
    total_h = height + legend_h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
            f'viewBox="0 0 {width} {total_h}" role="img" '
            f'aria-label="Sơ đồ dòng chất thải theo nhóm phân loại / waste flow by sorting '
            f'group">{"".join(parts)}</svg>')


@dataclass(frozen=True)
class Bar:
    """One bar: a value in percent against a target (min or max) in percent."""

    label: str
    value: float | None
    target: float | None
    kind: str = "min"  # the target is a minimum or a maximum
    assumed: bool = False

    @property
    def colour(self) -> str:
        """Green when the target is met, red when missed, grey when unknown."""
        if self.value is None or self.target is None:
            return GREY
        met = self.value >= self.target if self.kind == "min" else self.value <= self.target
        return GREEN if met else RED


def bars(items: Sequence[Bar], width: int = 900) -> str:
    """Horizontal bars, one per item, with the target drawn as a vertical mark."""
    row, left, right = 26, 330, 80
    height = row * len(items) + 30
    top = max([100.0] + [b.value or 0.0 for b in items] + [b.target or 0.0 for b in items])
    scale = (width - left - right) / top
    parts = [f'<line x1="{left}" y1="10" x2="{left}" y2="{height - 15}" stroke="#555"/>']
    for i, item in enumerate(items):
        y = 15 + i * row
        value = item.value or 0.0
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="12" text-anchor="end">'
                     f"{escape(item.label)}</text>")
        parts.append(f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{row - 8}" '
                     f'fill="{item.colour}"/>')
        shown = formats.percent(item.value, 2)
        parts.append(f'<text x="{left + value * scale + 4:.1f}" y="{y + 13}" font-size="12">'
                     f"{escape(shown)}</text>")
        if item.target is not None:
            tx = left + item.target * scale
            sign = "≥" if item.kind == "min" else "≤"
            note = " (giả định / assumed)" if item.assumed else ""
            parts.append(f'<line x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" y2="{y + row - 6}" '
                         f'stroke="#000" stroke-width="2"><title>mục tiêu / target {sign} '
                         f"{formats.percent(item.target, 2)}{escape(note)}</title></line>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">{"".join(parts)}</svg>')
