"""The release report: a self-contained HTML page and a Markdown summary."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from deploysim.report.discover import discover_section
from deploysim.schemas import Conversation, Message


@dataclass
class ReportData:
    candidate: str
    model: str
    baseline: str
    gate: list[dict[str, Any]]  # release_gate rows
    replay: dict[str, Any]  # pipeline.replay_summary
    examples: dict[str, list[tuple[Conversation, list[Message], str]]] = field(default_factory=dict)
    scorecard: tuple[list[dict[str, Any]], dict[str, Any]] | None = None  # deploysim.estimation.scorecard.load
    calibration: list[dict[str, Any]] = field(default_factory=list)  # CalibrationRow.as_dict() rows
    ppi: list[dict[str, Any]] = field(default_factory=list)  # estimate rows with a PPI++ rate
    clusters: list[dict[str, Any]] = field(default_factory=list)  # discover rows: possible new failure modes

    @property
    def holm_note(self) -> str:
        m = sum(1 for r in self.gate if r.get("status") != "no_threshold")
        return (
            f"Worse-than-baseline tests are one-sided (H0: difference <= margin) and Holm-adjusted across the "
            f"{m} gated behaviours, so the chance of wrongly calling any behaviour worse is at most 2.5%; "
            f"a behaviour passes when its interval lies below max_rate, fails when it lies above, and is "
            f"inconclusive otherwise."
        )

    @property
    def verdict(self) -> str:
        statuses = {r["status"] for r in self.gate}
        return "BLOCKED" if "fail" in statuses else "INCONCLUSIVE" if "inconclusive" in statuses else "PASSED"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def pts(x: float) -> str:
    return f"{100 * x:+.2f} pts"


def markdown(d: ReportData) -> str:
    lines = [
        f"## {d.candidate}: {d.verdict}",
        f"Model `{d.model}` against baseline `{d.baseline}`; replayed {d.replay['ok']}/{d.replay['replayed']} "
        f"({pct(d.replay['completeness'])} complete); {d.replay.get('prompt_tokens', 0):,} prompt and "
        f"{d.replay.get('completion_tokens', 0):,} completion tokens, cost ${d.replay.get('cost_usd', 0.0):,.4f}.",
        "",
        "| behaviour | rate (95% CI) | baseline | difference (95% CI) | threshold | status |",
        "|---|---|---|---|---|---|",
    ]
    for r in d.gate:
        lines.append(
            f"| {r['behaviour']} | {pct(r['rate'])} ({pct(r['ci_low'])}–{pct(r['ci_high'])}) | {pct(r['baseline_rate'])} "
            f"| {pts(r['diff'])} ({pts(r['diff_ci_low'])} to {pts(r['diff_ci_high'])}) | {pct(r.get('max_rate'))} "
            f"| **{r['status']}** |"
        )
    lines += ["", *(f"- {line}" for line in _replay_lines(d.replay))]
    fails = [r for r in d.gate if r["status"] == "fail"]
    if fails:
        lines += ["", "Failing: " + "; ".join(f"{r['behaviour']}: {r['reason']}" for r in fails)]
    lines += ["", d.holm_note]
    if d.ppi:
        lines += [
            "",
            "Grader-corrected (PPI++, human labels): "
            + "; ".join(
                f"{e['behaviour']} {pct(e['ppi_rate'])} ({pct(e['ppi_ci_low'])}–{pct(e['ppi_ci_high'])}, "
                f"{e['n_labelled']} labels) vs uncorrected {pct(e['rate'])}"
                for e in d.ppi
            ),
        ]
    if d.scorecard:
        s = d.scorecard[1]
        lines += [
            "",
            f"Forecast scorecard: median multiplicative error {s['median_multiplicative_error']:.2f}x, "
            f"within 2x {s['share_within_2x']:.0%}, within 10x {s['share_within_10x']:.0%}, direction right "
            f"for {s['direction_accuracy_moved']:.0%} of {s['n_moved']} behaviours that moved >= 1.5x.",
        ]
    return "\n".join(lines)


def _replay_lines(replay: dict[str, Any]) -> list[str]:
    """Where the answers came from and one line per failure class (count and an example)."""
    from deploysim.replay.accounting import summary_lines

    return summary_lines(replay)


def _chart(gate: list[dict[str, Any]]) -> str:
    """Dot-and-whisker SVG: candidate and baseline rate with 95% intervals per behaviour."""
    if not gate:
        return ""
    width, left, row_h = 720, 190, 44
    top = max(
        [r["ci_high"] for r in gate] + [r["baseline_ci_high"] for r in gate] + [r.get("max_rate") or 0 for r in gate]
    )
    top = next(t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0) if t >= top * 1.05 or t == 1.0)
    x = lambda v: left + (width - left - 20) * (v / top)  # noqa: E731
    h = row_h * len(gate) + 40
    parts = [
        f'<svg role="img" aria-label="rates with 95% intervals" width="{width}" height="{h}" viewBox="0 0 {width} {h}">'
    ]
    for i in range(5):
        v = top * i / 4
        parts.append(
            f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="10" y2="{h - 25}" stroke="#e5e7eb"/>'
            f'<text x="{x(v):.1f}" y="{h - 8}" font-size="11" text-anchor="middle" fill="#6b7280">{pct(v)}</text>'
        )
    for i, r in enumerate(gate):
        y = 24 + i * row_h
        parts.append(
            f'<text x="{left - 10}" y="{y + 8}" font-size="13" text-anchor="end">{html.escape(r["behaviour"])}</text>'
        )
        if r.get("max_rate") is not None:
            parts.append(
                f'<line x1="{x(r["max_rate"]):.1f}" x2="{x(r["max_rate"]):.1f}" y1="{y - 8}" y2="{y + 22}" '
                f'stroke="#dc2626" stroke-dasharray="3 2"><title>threshold {pct(r["max_rate"])}</title></line>'
            )
        for dy, lo, mid, hi, colour, name in (
            (0, r["ci_low"], r["rate"], r["ci_high"], "#2563eb", "candidate"),
            (14, r["baseline_ci_low"], r["baseline_rate"], r["baseline_ci_high"], "#9ca3af", "baseline"),
        ):
            parts.append(
                f"<g><title>{name}: {pct(mid)} ({pct(lo)}–{pct(hi)})</title>"
                f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y + dy}" y2="{y + dy}" stroke="{colour}" stroke-width="2"/>'
                f'<circle cx="{x(mid):.1f}" cy="{y + dy}" r="4" fill="{colour}"/></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _message_html(m: Message) -> str:
    body = html.escape(m.content or "")
    for c in m.tool_calls:
        body += f'<div class="call">→ {html.escape(c.name)}({html.escape(c.arguments)})</div>'
    return f'<div class="msg {m.role}"><b>{m.role}</b> {body}</div>'


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(id_: str, rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table id="{id_}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _extra_sections(d: ReportData) -> str:
    out = ""
    if d.ppi:
        out += "<h2>Grader-corrected estimates (PPI++, domain and verdict)</h2>" + _table(
            "ppi", d.ppi, ["behaviour", "rate", "ppi_rate", "ppi_ci_low", "ppi_ci_high", "n_labelled"]
        )
    if d.calibration:
        out += (
            "<h2>Grader calibration against human labels</h2><p>Verdicts where the labels say the behaviour "
            "applies (a grader that did not apply counts as not flagged); the domain (does the behaviour "
            "apply?) on every labelled turn, na meaning it does not.</p>"
            + _table(
                "calibration",
                d.calibration,
                ["behaviour", "grader", "n", "precision", "recall", "kappa", "domain_n", "domain_agreement"],
            )
        )
    if d.scorecard:
        rows, s = d.scorecard
        out += (
            "<h2>Forecast scorecard</h2><p>Forecast vs production after release, per behaviour.</p>"
            + _table(
                "scorecard",
                rows,
                [
                    "behaviour",
                    "previous_rate",
                    "forecast_rate",
                    "observed_rate",
                    "multiplicative_error",
                    "direction_right",
                    "moved",
                ],
            )
            + _table("scorecard_summary", [s], list(s))
        )
    out += discover_section(d.clusters)
    return out


def render_html(d: ReportData) -> str:
    status_class = {"BLOCKED": "fail", "INCONCLUSIVE": "undecided"}.get(d.verdict, "pass")
    rows = "".join(
        f"<tr class='{r['status']}'><td>{html.escape(r['behaviour'])}</td><td>{pct(r['rate'])}</td>"
        f"<td>{pct(r['ci_low'])} – {pct(r['ci_high'])}</td><td>{pct(r['baseline_rate'])}</td>"
        f"<td>{pts(r['diff'])} ({pts(r['diff_ci_low'])} to {pts(r['diff_ci_high'])})</td>"
        f"<td>{r['n_flagged']}/{r['n_applicable']}</td><td>{pct(r.get('max_rate'))}</td>"
        f"<td><b>{r['status']}</b></td><td>{html.escape(r.get('reason') or '')}</td></tr>"
        for r in d.gate
    )
    rp = d.replay
    stats = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rp.items()
        if k not in ("failure_classes", "top_errors")
    )
    stats += "".join(
        f"<tr><th>{'replay' if i == 0 else ''}</th><td>{html.escape(line)}</td></tr>"
        for i, line in enumerate(_replay_lines(rp))
    )
    examples = ""
    for behaviour, items in d.examples.items():
        examples += f"<h3>{html.escape(behaviour)}</h3>"
        for conv, turn, detail in items:
            shown = conv.prefix()[-3:]
            examples += (
                f"<details><summary>{html.escape(conv.conversation_id)} · {html.escape(conv.topic)} · "
                f"{html.escape(detail)}</summary>"
                + "".join(_message_html(m) for m in shown)
                + "<div class='sep'>candidate's turn</div>"
                + "".join(_message_html(m) for m in turn)
                + "</details>"
            )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deploysim · {html.escape(d.candidate)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#111827;padding:0 1rem}}
.verdict{{font-size:1.6rem;padding:.6rem 1rem;border-radius:.4rem;display:inline-block}}
.verdict.pass{{background:#dcfce7;color:#166534}} .verdict.fail{{background:#fee2e2;color:#991b1b}}
.verdict.undecided{{background:#fef3c7;color:#92400e}} tr.inconclusive td{{background:#fffbeb}}
table{{border-collapse:collapse;margin:1rem 0}} td,th{{border-bottom:1px solid #e5e7eb;padding:.35rem .6rem;text-align:left;font-size:.9rem}}
tr.fail td{{background:#fef2f2}} .legend span{{margin-right:1rem}}
.msg{{margin:.3rem 0;padding:.4rem .6rem;border-radius:.3rem;background:#f9fafb;white-space:pre-wrap;font-size:.85rem}}
.msg.assistant{{background:#eff6ff}} .msg.tool{{background:#fefce8}} .call{{font-family:monospace}}
.sep{{font-size:.75rem;color:#6b7280;margin-top:.5rem}} details{{margin:.4rem 0}}
</style></head><body>
<h1>Release rehearsal: {html.escape(d.candidate)}</h1>
<p>Model <code>{html.escape(d.model)}</code>, compared with baseline <code>{html.escape(d.baseline)}</code> on the same sampled conversations.</p>
<p class="verdict {status_class}" id="verdict">{d.verdict}</p>
<h2>Gate</h2>
<table id="gate"><thead><tr><th>behaviour</th><th>rate</th><th>95% CI</th><th>baseline</th><th>difference (95% CI)</th>
<th>flagged / applicable</th><th>threshold</th><th>status</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Rates with 95% intervals</h2>
<p class="legend"><span style="color:#2563eb">● candidate</span><span style="color:#9ca3af">● baseline</span>
<span style="color:#dc2626">┆ threshold</span></p>
{_chart(d.gate)}
<p id="holm">{html.escape(d.holm_note)}</p>
{_extra_sections(d)}
<h2>Replay</h2><table id="replay">{stats}</table>
<h2>Examples from failing behaviours</h2>
{examples or "<p>No failing behaviour.</p>"}
<p style="color:#6b7280;font-size:.8rem">All text shown is redacted. Generated by deploysim.</p>
</body></html>
"""
