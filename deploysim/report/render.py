"""The release report: a self-contained HTML page and a Markdown summary."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Collection

from deploysim.report import charts
from deploysim.report.discover import discover_section
from deploysim.report.evidence import evidence, marked
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
    breakdown: list[dict[str, Any]] = field(default_factory=list)  # deploysim.estimation.breakdown.Cell rows
    examples_of: dict[str, str] = field(default_factory=dict)  # behaviour -> grader whose flags the examples are
    clusters: list[dict[str, Any]] = field(default_factory=list)  # discover rows: possible new failure modes
    traffic_days: list[str] = field(default_factory=list)  # the days of traffic the sample was drawn from

    @property
    def days_note(self) -> str:
        """' Sampled from the traffic of 2026-05-04 to 2026-05-10 (7 days).' ('' without days)."""
        from deploysim.days import describe

        return f" Sampled from the traffic of {describe(self.traffic_days)}." if self.traffic_days else ""

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
    mark = {"fail": "✗", "inconclusive": "?", "pass": "✓"}
    lines = [
        f"## {d.candidate}: {d.verdict}",
        *(f"- {mark[k]} {line}" for k, line in reasons(d.gate)),
        "",
        f"Model `{d.model}` against baseline `{d.baseline}`; replayed {d.replay['ok']}/{d.replay['replayed']} "
        f"({pct(d.replay['completeness'])} complete); {d.replay.get('prompt_tokens', 0):,} prompt and "
        f"{d.replay.get('completion_tokens', 0):,} completion tokens, cost ${d.replay.get('cost_usd', 0.0):,.4f}."
        f"{d.days_note}",
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


def reasons(gate: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Why the verdict is what it is: (status, line) per failing, then per undecided behaviour."""
    out = [
        (
            "fail",
            f"{r['behaviour']}: {r.get('reason') or 'failed'}"
            + (f" [{r['decided_by']}]" if r.get("decided_by") else ""),
        )
        for r in gate
        if r["status"] == "fail"
    ]
    for r in gate:
        if r["status"] == "inconclusive":
            more = r.get("more_needed")
            need = (
                f"about {more:,} more conversations would decide it"
                if more is not None
                else "no sample size decides it at this rate"
            )
            out.append(
                (
                    "inconclusive",
                    f"{r['behaviour']}: undecided, {pct(r['rate'])} (95% CI {pct(r['ci_low'])}–"
                    f"{pct(r['ci_high'])}) spans the limit {pct(r.get('max_rate'))}; {need}",
                )
            )
    if gate and not out:
        out.append(
            (
                "pass",
                "every gated behaviour's interval lies below its limit and none is significantly worse than the baseline",
            )
        )
    return out


def gate_chart(gate: list[dict[str, Any]]) -> str:
    """Candidate and baseline per behaviour, each row on its own small-rate axis; behaviours with no
    applicable conversation are left out (their interval is 0–100%)."""
    rows = [
        charts.Row(
            label=r["behaviour"],
            series=[
                charts.Series("candidate", charts.PALETTE[0], r["ci_low"], r["rate"], r["ci_high"]),
                charts.Series(
                    "baseline", charts.PALETTE[1], r["baseline_ci_low"], r["baseline_rate"], r["baseline_ci_high"]
                ),
            ],
            limit=r.get("max_rate"),
            css=r["status"],
        )
        for r in gate
        if r.get("n_applicable")
    ]
    return charts.chart(rows, "rates with 95% intervals per behaviour", css_id="gate-chart")


DIMENSIONS = {"topic": "topic", "surface": "surface", "kind": "chat vs agent"}


def _breakdown_section(d: ReportData) -> str:
    if not d.breakdown:
        return ""
    gate = {r["behaviour"]: r for r in d.gate}
    order = {"fail": 0, "inconclusive": 1}
    behaviours = sorted(
        {c["behaviour"] for c in d.breakdown if c["behaviour"] in gate and gate[c["behaviour"]].get("n_applicable")},
        key=lambda b: (order.get(gate[b]["status"], 2), b),
    )
    out = (
        "<h2>By stratum</h2><p>The same estimator as the gate, restricted to one topic, surface or kind of "
        "conversation (95% intervals; small strata have wide ones). Candidate in blue, baseline in grey, "
        "the behaviour's limit dashed; an interval cut by the axis ends in an arrow.</p>"
    )
    for b in behaviours:
        cells = [c for c in d.breakdown if c["behaviour"] == b]
        cells.sort(
            key=lambda c: (list(DIMENSIONS).index(c["dimension"]) if c["dimension"] in DIMENSIONS else 9, c["level"])
        )
        g = gate[b]
        limit = g.get("max_rate")
        top = charts.nice_top(
            max([c["rate"] for c in cells] + [c["baseline_rate"] for c in cells] + [limit or 0.0, 0.005]) * 1.3
        )
        rows = [
            charts.Row(
                label=f"{DIMENSIONS.get(c['dimension'], c['dimension'])}: {c['level']}",
                series=[
                    charts.Series("candidate", charts.PALETTE[0], c["ci_low"], c["rate"], c["ci_high"]),
                    charts.Series(
                        "baseline", charts.PALETTE[1], c["baseline_ci_low"], c["baseline_rate"], c["baseline_ci_high"]
                    ),
                ],
                limit=limit,
            )
            for c in cells
        ]
        table = "".join(
            f"<tr><td>{html.escape(DIMENSIONS.get(c['dimension'], c['dimension']))}</td><td>{html.escape(c['level'])}</td>"
            f"<td>{c['n_flagged']}/{c['n_applicable']}</td><td>{pct(c['rate'])}</td>"
            f"<td>{pct(c['ci_low'])} – {pct(c['ci_high'])}</td><td>{pct(c['baseline_rate'])}</td></tr>"
            for c in cells
        )
        out += (
            f"<details class='stratum' {'open' if g['status'] == 'fail' else ''}><summary><b>{html.escape(b)}</b> · "
            f"<span class='{g['status']}'>{g['status']}</span> · limit {pct(limit)}</summary>"
            + charts.chart(rows, f"{b} by stratum", shared_top=top)
            + "<table class='breakdown'><thead><tr><th>by</th><th>stratum</th><th>flagged / applicable</th>"
            f"<th>rate</th><th>95% CI</th><th>baseline</th></tr></thead><tbody>{table}</tbody></table></details>"
        )
    return out


def _examples_section(d: ReportData) -> str:
    out = ""
    for behaviour, items in d.examples.items():
        status = next((r["status"] for r in d.gate if r["behaviour"] == behaviour), "")
        grader = d.examples_of.get(behaviour, "")
        out += f"<h3>{html.escape(behaviour)} <span class='{status}'>({html.escape(status)})</span></h3>" + (
            f"<p class='muted'>flagged by <code>{html.escape(grader)}</code></p>" if grader else ""
        )
        for i, (conv, turn, detail) in enumerate(items):
            ev = evidence(behaviour, conv, turn, detail)
            shown = conv.prefix()[-3:]
            earlier = [m for m in conv.prefix()[:-3] if id(m) in ev.injected]  # the injected tool result
            lines = "".join(
                f"<div class='ev'><span class='what'>{html.escape(what)}</span> {marked(text, ev.marks)}</div>"
                for what, text in ev.lines
            )
            out += (
                f"<details class='example'{' open' if i == 0 else ''}><summary>{html.escape(conv.conversation_id)} · {html.escape(conv.topic)} · "
                f"{html.escape(conv.surface)} · {conv.kind} — {html.escape(detail)}</summary>"
                f"<div class='evidence'>{lines}</div>"
                + ("<div class='sep'>earlier</div>" if earlier else "")
                + "".join(_message_html(m, ev.injected.get(id(m), [])) for m in earlier)
                + ("<div class='sep'>…</div>" if len(conv.prefix()) > 3 else "")
                + "".join(_message_html(m, ev.injected.get(id(m), [])) for m in shown)
                + "<div class='sep'>candidate's turn</div>"
                + "".join(_message_html(m, ev.injected.get(id(m), []) or ev.marks) for m in turn)
                + "</details>"
            )
    return out


def _message_html(m: Message, marks: Collection[str] = ()) -> str:
    body = marked(m.content or "", marks)
    for c in m.tool_calls:
        body += f'<div class="call">→ {marked(c.name, marks)}({marked(c.arguments, marks)})</div>'
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


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1240px;color:#111827;padding:0 1rem}
.verdict{font-size:1.6rem;font-weight:600;padding:.6rem 1rem;border-radius:.4rem;display:inline-block;margin:.5rem 0}
.verdict.pass{background:#dcfce7;color:#166534} .verdict.fail{background:#fee2e2;color:#991b1b}
.verdict.undecided{background:#fef3c7;color:#92400e}
.badge{padding:.1rem .4rem;border-radius:.3rem;font-weight:600;font-size:.8rem} .badge.pass{background:#dcfce7;color:#166534}
.badge.fail{background:#fee2e2;color:#991b1b} .badge.undecided{background:#fef3c7;color:#92400e}
td.fail{background:#fef2f2} td.inconclusive{background:#fffbeb}
ul.reasons{list-style:none;padding:0} ul.reasons li{margin:.3rem 0;padding:.3rem .6rem;border-left:4px solid #d1d5db}
ul.reasons li.fail{border-color:#dc2626} ul.reasons li.inconclusive{border-color:#d97706} ul.reasons li.pass{border-color:#16a34a}
table{border-collapse:collapse;margin:1rem 0} td,th{border-bottom:1px solid #e5e7eb;padding:.3rem .45rem;text-align:left;font-size:.84rem;vertical-align:top}
.scroll{overflow-x:auto}
tr.fail td{background:#fef2f2} tr.inconclusive td{background:#fffbeb} td.small{font-size:.8rem;color:#374151} td{white-space:nowrap} td.status{white-space:normal;max-width:13rem} .small{font-size:.75rem;color:#4b5563}
span.fail,text.fail{color:#b91c1c;fill:#b91c1c;font-weight:600} span.inconclusive,text.inconclusive{color:#b45309;fill:#b45309}
span.pass{color:#15803d} .legend span{margin-right:1rem} .muted{color:#6b7280;font-size:.85rem}
svg.chart{display:block;max-width:100%;height:auto;margin:.5rem 0}
.msg{margin:.3rem 0;padding:.4rem .6rem;border-radius:.3rem;background:#f9fafb;white-space:pre-wrap;font-size:.85rem}
.msg.assistant{background:#eff6ff} .msg.tool{background:#fefce8} .call{font-family:monospace}
mark{background:#fde68a;padding:0 .1rem} .evidence{margin:.4rem 0} .ev{font-size:.85rem;margin:.15rem 0}
.ev .what{display:inline-block;min-width:11rem;color:#6b7280}
.sep{font-size:.75rem;color:#6b7280;margin-top:.5rem} details{margin:.4rem 0} details.stratum{border-top:1px solid #e5e7eb;padding-top:.3rem}
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n"
        '<p class="muted">All text shown is redacted. Generated by deploysim.</p>\n</body></html>\n'
    )


VERDICT_CLASS = {"BLOCKED": "fail", "INCONCLUSIVE": "undecided", "PASSED": "pass"}


def _more(r: dict[str, Any]) -> str:
    """The further conversations an undecided behaviour needs ("" when decided)."""
    if r["status"] != "inconclusive":
        return ""
    return "no sample size decides it" if r.get("more_needed") is None else f"about {r['more_needed']:,}"


def _gate_table(gate: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr class='{r['status']}' title='{html.escape(r.get('reason') or '', quote=True)}'>"
        f"<td>{html.escape(r['behaviour'])}</td><td>{pct(r['rate'])}</td>"
        f"<td>{pct(r['ci_low'])} – {pct(r['ci_high'])}</td><td>{pct(r['baseline_rate'])}</td>"
        f"<td>{100 * r['diff']:+.2f} ({100 * r['diff_ci_low']:+.2f} to {100 * r['diff_ci_high']:+.2f})</td>"
        f"<td>{r['n_flagged']}/{r['n_applicable']}</td><td>{pct(r.get('max_rate'))}</td>"
        f"<td class='status'><b>{r['status']}</b>"
        + (f"<div class='small'>by {html.escape(r['decided_by'])}</div>" if r.get("decided_by") else "")
        + f"</td><td>{_more(r)}</td></tr>"
        for r in gate
    )
    return (
        '<div class="scroll"><table id="gate"><thead><tr><th>behaviour</th><th>rate</th><th>95% CI</th><th>baseline</th>'
        "<th>difference, pts (95% CI)</th><th>flagged / applicable</th><th>limit</th><th>status (decided by)</th>"
        f"<th>more needed</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def render_html(d: ReportData) -> str:
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
    why = "".join(f"<li class='{k}'>{html.escape(line)}</li>" for k, line in reasons(d.gate))
    look = d.gate[0].get("look") if d.gate else None
    look_note = (
        f"<p class='muted'>Round {look} of a sample grown until the gate decides: "
        f"{1 - 2 * d.gate[0]['alpha']:.2%} intervals, so looking after every round keeps the error rates.</p>"
        if look
        else ""
    )
    left_out = [r["behaviour"] for r in d.gate if not r.get("n_applicable")]
    body = f"""<h1>Release rehearsal: {html.escape(d.candidate)}</h1>
<p class="verdict {VERDICT_CLASS[d.verdict]}" id="verdict">{d.verdict}</p>
<ul class="reasons" id="reasons">{why}</ul>{look_note}
<p>Model <code>{html.escape(d.model)}</code>, compared with baseline <code>{html.escape(d.baseline)}</code> on the same sampled conversations.{html.escape(d.days_note)}</p>
<h2>Gate</h2>
{_gate_table(d.gate)}
<h2>Rates with 95% intervals</h2>
<p class="muted">Each behaviour on its own axis, from 0 to a little above its limit or its largest interval end.</p>
{charts.legend([("candidate", charts.PALETTE[0]), ("baseline", charts.PALETTE[1])])}
{gate_chart(d.gate)}
{f"<p class='muted'>Not applicable to any sampled conversation: {html.escape(', '.join(left_out))}.</p>" if left_out else ""}
<p id="holm">{html.escape(d.holm_note)}</p>
{_breakdown_section(d)}
<h2>Examples</h2>
<p class="muted">Flagged turns of failing and undecided behaviours, with what the grader found (marked).</p>
{_examples_section(d) or "<p>No flagged turn of a failing or undecided behaviour.</p>"}
{_extra_sections(d)}
<h2>Replay</h2><table id="replay">{stats}</table>"""
    return _page(f"deploysim · {d.candidate}", body)
