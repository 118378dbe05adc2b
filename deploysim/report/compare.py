"""The comparison page: registered candidates side by side, each with its history of gate decisions."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploysim.report import charts
from deploysim.report.render import VERDICT_CLASS, _page, pct

VERDICT = {"pass": "PASSED", "blocked": "BLOCKED", "inconclusive": "INCONCLUSIVE"}


@dataclass
class Entry:
    name: str
    model: str
    baseline: str
    decisions: list[dict[str, Any]]  # deploysim.history.decisions rows, newest first
    gate: list[dict[str, Any]] = field(default_factory=list)  # gate rows of the newest decision


def _link(report: str | None, out: Path, text: str) -> str:
    if not report:
        return "(removed)"
    return f'<a href="{html.escape(os.path.relpath(report, out.parent))}">{html.escape(text)}</a>'


def _verdict(v: str) -> str:
    shown = VERDICT.get(v, v.upper())
    return f"<span class='badge {VERDICT_CLASS.get(shown, '')}'>{shown}</span>"


def render_compare(entries: list[Entry], out: Path) -> str:
    """The page written to `out` (report links are relative to it)."""
    palette = [c for c in charts.PALETTE if c != charts.PALETTE[1]]  # the baseline's grey is left out
    colours = {e.name: palette[i % len(palette)] for i, e in enumerate(entries)}
    summary = "".join(
        f"<tr><td><b style='color:{colours[e.name]}'>{html.escape(e.name)}</b></td><td><code>{html.escape(e.model)}</code></td>"
        f"<td>{html.escape(e.baseline)}</td><td>{_verdict(d['verdict'])}</td><td>{html.escape((d['decided_at'] or '-')[:19])}</td>"
        f"<td>{html.escape(', '.join(d['failed']) or '–')}</td>"
        f"<td title='{html.escape(', '.join(d['undecided']), quote=True)}'>{len(d['undecided']) or '–'}</td>"
        f"<td>{len(e.decisions)}</td><td>{_link(d['report'], out, 'report')}</td></tr>"
        for e in entries
        for d in e.decisions[:1]
    )
    behaviours = sorted({r["behaviour"] for e in entries for r in e.gate})
    by = {(e.name, r["behaviour"]): r for e in entries for r in e.gate}
    limit = {r["behaviour"]: r.get("max_rate") for e in entries for r in e.gate}
    head = "".join(f"<th>{html.escape(e.name)}</th>" for e in entries)
    cells = ""
    for b in behaviours:
        row = f"<tr><td>{html.escape(b)}</td><td>{pct(limit[b])}</td>"
        for e in entries:
            r = by.get((e.name, b))
            if r is None:
                row += "<td>–</td>"
                continue
            more = (
                f", about {r['more_needed']:,} more" if r["status"] == "inconclusive" and r.get("more_needed") else ""
            )
            row += (
                f"<td class='{r['status']}'>{pct(r['rate'])} <span class='muted'>({pct(r['ci_low'])}–{pct(r['ci_high'])})"
                f"</span><br><b>{r['status']}</b>{more}</td>"
            )
        cells += row + "</tr>"
    rows = [
        charts.Row(
            label=b,
            series=[
                charts.Series(e.name, colours[e.name], r["ci_low"], r["rate"], r["ci_high"])
                for e in entries
                if (r := by.get((e.name, b))) is not None and r.get("n_applicable")
            ],
            limit=limit[b],
        )
        for b in behaviours
    ]
    rows = [r for r in rows if r.series]
    history = ""
    for e in entries:
        lines = "".join(
            f"<tr><td>{html.escape((d['decided_at'] or '-')[:19])}</td><td><code>{html.escape(d['run_id'])}</code></td>"
            f"<td><code>{html.escape(d['sample_version'] or '-')}</code></td><td>{_verdict(d['verdict'])}</td>"
            f"<td>{html.escape(', '.join(d['failed']) or '–')}</td><td>{len(d['undecided'])}</td>"
            f"<td>{_link(d['report'], out, 'report')}</td></tr>"
            for d in e.decisions
        )
        history += (
            f"<h3 id='history-{html.escape(e.name)}'>{html.escape(e.name)}</h3><table class='history'><thead><tr>"
            "<th>decided at (UTC)</th><th>run</th><th>sample</th><th>verdict</th><th>failed</th><th>undecided</th>"
            f"<th>report</th></tr></thead><tbody>{lines}</tbody></table>"
        )
    body = f"""<h1>Candidates side by side</h1>
<p>The newest gate decision of each candidate, then every decision it has had (newest first).</p>
<table id="candidates"><thead><tr><th>candidate</th><th>model</th><th>baseline</th><th>verdict</th><th>decided at (UTC)</th>
<th>failed</th><th>undecided</th><th>decisions</th><th>report</th></tr></thead><tbody>{summary}</tbody></table>
<h2>Rates with 95% intervals</h2>
<p class="muted">Each behaviour on its own axis, from 0 to a little above its limit or its largest interval end.</p>
{charts.legend([(e.name, colours[e.name]) for e in entries])}
{charts.chart(rows, "rates of each candidate with 95% intervals", css_id="compare-chart")}
<h2>By behaviour</h2>
<table id="matrix"><thead><tr><th>behaviour</th><th>limit</th>{head}</tr></thead><tbody>{cells}</tbody></table>
<h2>History of decisions</h2>
{history}"""
    return _page("deploysim · candidates side by side", body)
