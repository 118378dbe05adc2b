"""Inline SVG dot-and-whisker charts on a scale that shows small rates.

Each row has a label, one or more series (a point with its interval) and an optional limit. The axis
runs from 0 to a round number above the row's largest interval end or limit (with headroom), so a 2%
limit is not squeezed into a 0–100% axis; `shared_top` gives every row one axis instead, and an
interval that runs past it is cut with an arrow (its tooltip keeps the full numbers).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

LABEL_PX = 7.6  # width of one label character at 13px (generous, so labels are never cut)
TRACK_PX = 460
HEADROOM = 1.15
PALETTE = ["#2563eb", "#9ca3af", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d"]


@dataclass
class Series:
    name: str
    colour: str
    low: float
    mid: float
    high: float


@dataclass
class Row:
    label: str
    series: list[Series] = field(default_factory=list)
    limit: float | None = None
    css: str = ""  # class of the row's label (e.g. fail, inconclusive)


def pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def nice_top(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above v (v > 0), at most 1."""
    v = max(v, 1e-4)
    e = 10 ** math.floor(math.log10(v))
    return min(next(m * e for m in (1, 2, 2.5, 5, 10) if m * e >= v * (1 - 1e-9)), 1.0)


def row_top(r: Row) -> float:
    return nice_top(max([s.high for s in r.series] + [r.limit or 0.0]) * HEADROOM)


def chart(rows: list[Row], label: str, shared_top: float | None = None, css_id: str = "") -> str:
    """One SVG; each row on its own axis (0 to row_top), or all on 0 to shared_top."""
    if not rows:
        return ""
    left = 16 + LABEL_PX * max(len(r.label) for r in rows)
    width = int(left + TRACK_PX + 40)
    series_h = 12
    heights = [18 + series_h * max(len(r.series), 1) + (0 if shared_top else 16) for r in rows]
    height = sum(heights) + (30 if shared_top else 10)
    x0, x1 = left, left + TRACK_PX
    id_attr = f' id="{html.escape(css_id)}"' if css_id else ""
    out = [
        f'<svg role="img" aria-label="{html.escape(label)}"{id_attr} class="chart" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui,sans-serif">'
    ]
    y = 14
    if shared_top:  # one axis under every row
        end = y + sum(heights)
        for i in range(5):
            xv = x0 + (x1 - x0) * i / 4
            out.append(
                f'<line x1="{xv:.1f}" x2="{xv:.1f}" y1="4" y2="{end - 8}" stroke="#e5e7eb"/>'
                f'<text x="{xv:.1f}" y="{end + 6}" font-size="10" text-anchor="middle" fill="#6b7280">'
                f"{pct(shared_top * i / 4)}</text>"
            )
    for r, h in zip(rows, heights):
        top = shared_top or row_top(r)

        def x(v: float, top: float = top) -> float:
            return x0 + (x1 - x0) * min(max(v, 0.0), top) / top

        mid_y = y + series_h * (len(r.series) - 1) / 2
        out.append(
            f'<text x="{x0 - 10:.1f}" y="{mid_y + 4:.1f}" font-size="13" text-anchor="end" class="{r.css}">'
            f"{html.escape(r.label)}</text>"
        )
        bottom = y + series_h * (len(r.series) - 1) + 8
        if not shared_top:  # the row's own axis: 0, half, top
            for v in (0, top / 2, top):
                out.append(
                    f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y - 8}" y2="{bottom}" stroke="#e5e7eb"/>'
                    f'<text x="{x(v):.1f}" y="{bottom + 12}" font-size="10" text-anchor="middle" fill="#6b7280">'
                    f"{pct(v)}</text>"
                )
        if r.limit is not None:
            out.append(
                f'<line x1="{x(r.limit):.1f}" x2="{x(r.limit):.1f}" y1="{y - 9}" y2="{bottom + 1}" stroke="#dc2626" '
                f'stroke-width="1.5" stroke-dasharray="3 2"><title>limit {pct(r.limit)}</title></line>'
            )
        for i, s in enumerate(r.series):
            sy = y + i * series_h
            tip = f"{s.name}: {pct(s.mid)} (95% CI {pct(s.low)}–{pct(s.high)})"
            cut = s.high > top
            out.append(
                f"<g><title>{html.escape(tip)}</title>"
                f'<line x1="{x(s.low):.1f}" x2="{x(s.high):.1f}" y1="{sy}" y2="{sy}" '
                f'stroke="{s.colour}" stroke-width="2"/>'
                + (
                    f'<path d="M{x1:.1f},{sy - 4} L{x1 + 7:.1f},{sy} L{x1:.1f},{sy + 4} Z" fill="{s.colour}"/>'
                    if cut
                    else ""
                )
                + f'<circle cx="{x(s.mid):.1f}" cy="{sy}" r="4" fill="{s.colour}"/></g>'
            )
        y += h
    out.append("</svg>")
    return "".join(out)


def legend(series: list[tuple[str, str]], limit: bool = True) -> str:
    items = "".join(f'<span style="color:{c}">● {html.escape(n)}</span>' for n, c in series)
    return f'<p class="legend">{items}' + ('<span style="color:#dc2626">┆ limit</span>' if limit else "") + "</p>"
