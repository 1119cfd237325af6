"""Inline SVG charts for the HTML report: a flow diagram and bars against targets.

Plain strings, no JavaScript and no external files, so the report opens anywhere and can
be archived as one file. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

GREEN, RED, GREY, BLUE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"


def tonnes(grams: float) -> str:
    """Grams as tonnes with three decimals: ``0.140 t``."""
    return f"{grams / 1_000_000:,.3f} t"


def flow_diagram(
    flows: Mapping[tuple[str, str], float], label: Mapping[str, str], width: int = 900
) -> str:
    """A three-column flow (Sankey) diagram: households → station → treatment method."""
    sources = {a for a, _ in flows}
    targets = {b for _, b in flows}
    first = sorted(sources - targets)
    middle = sorted(sources & targets)
    last = sorted(targets - sources)
    columns = [c for c in (first, middle, last) if c]
    if not columns or not flows:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" '
                'role="img"><text x="10" y="25">Không có dữ liệu / no data</text></svg>')
    # A node is as big as the larger of what flows in and what flows out of it.
    outflow: dict[str, float] = {}
    inflow: dict[str, float] = {}
    for (a, b), grams in flows.items():
        outflow[a] = outflow.get(a, 0.0) + grams
        inflow[b] = inflow.get(b, 0.0) + grams
    size = {n: max(outflow.get(n, 0.0), inflow.get(n, 0.0)) for n in outflow.keys() | inflow}
    height, gap, node_w = 420, 14, 18
    biggest = max(sum(size[n] for n in col) for col in columns) or 1.0
    most = max(len(col) for col in columns)
    scale = (height - gap * (most - 1) - 40) / biggest
    xs = [20 + i * (width - 260) / max(1, len(columns) - 1) for i in range(len(columns))]
    pos: dict[str, tuple[float, float, float]] = {}  # node → (x, y, h)
    parts: list[str] = []
    for x, col in zip(xs, columns, strict=True):
        y = 20.0
        for node in col:
            h = max(2.0, size[node] * scale)
            pos[node] = (x, y, h)
            y += h + gap
    out_used: dict[str, float] = {}
    in_used: dict[str, float] = {}
    for (a, b), grams in sorted(flows.items(), key=lambda kv: (pos[kv[0][0]][1], pos[kv[0][1]][1])):
        if grams <= 0:
            continue
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
        parts.append(
            f'<path d="{curve}" '
            f'stroke="{BLUE}" stroke-opacity="0.35" stroke-width="{h:.1f}" fill="none">'
            f"<title>{escape(label.get(a, a))} → {escape(label.get(b, b))}: "
            f"{escape(tonnes(grams))}</title></path>"
        )
    for node, (x, y, h) in pos.items():
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" '
                     f'fill="{BLUE}"/>')
        parts.append(f'<text x="{x + node_w + 4:.1f}" y="{y + min(h, 24) / 2 + 4:.1f}" '
                     f'font-size="12">{escape(label.get(node, node))} — '
                     f"{escape(tonnes(size[node]))}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="Sơ đồ dòng chất thải / waste flow">{"".join(parts)}</svg>')


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
        shown = "–" if item.value is None else f"{item.value:.2f} %"
        parts.append(f'<text x="{left + value * scale + 4:.1f}" y="{y + 13}" font-size="12">'
                     f"{escape(shown)}</text>")
        if item.target is not None:
            tx = left + item.target * scale
            sign = "≥" if item.kind == "min" else "≤"
            note = " (giả định / assumed)" if item.assumed else ""
            parts.append(f'<line x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" y2="{y + row - 6}" '
                         f'stroke="#000" stroke-width="2"><title>mục tiêu / target {sign} '
                         f"{item.target:.2f} %{escape(note)}</title></line>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">{"".join(parts)}</svg>')
