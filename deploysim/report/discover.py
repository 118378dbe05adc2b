"""The report's "Possible new failure modes" section: clusters of answers that differ most from the
baseline's (deploysim.discover). Self-contained: takes the discover step's rows as read from the lake."""

from __future__ import annotations

import html
import json
from typing import Any


def _list(v: Any) -> list:
    """A list column as written to Parquet (JSON text) or as a list."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return []
    return list(v or [])


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def _short(text: str, n: int = 240) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def concern(v: Any) -> str:
    """The judge's view of a cluster in words."""
    return "concerning" if v is True else "not concerning" if v is False else "no verdict"


def _judged(c: dict[str, Any], note: bool = True) -> str:
    """Who named the cluster and, for the judge, whether it found the pattern concerning (and why)."""
    by = str(c.get("named_by") or "terms")
    if by == "terms":
        return "no judge (named by its terms)"
    why = str(c.get("judge_note") or "") if note else ""
    return f"{concern(c.get('concerning'))} ({by})" + (f": {why}" if why else "")


def discover_section(clusters: list[dict[str, Any]]) -> str:
    """HTML: one row per cluster (name, the judge's view, size, population share with its 95% interval,
    top terms) and its representative redacted examples. "" when there are no clusters."""
    if not clusters:
        return ""
    rows, examples = "", ""
    for c in clusters:
        name = html.escape(str(c.get("name") or ""))
        note = str(c.get("judge_note") or "")
        tip = f" title='{html.escape(note, quote=True)}'" if note else ""  # the judge's reason: a tooltip
        judge_line = f"<div class='msg'><b>judge</b> {html.escape(_judged(c))}</div>" if note else ""
        rows += (
            f"<tr><td>{c.get('cluster')}</td><td>{name}</td>"
            f"<td{tip}>{html.escape(_judged(c, False))}</td>"
            f"<td>{c.get('size')}</td>"
            f"<td>{_pct(c.get('share'))} ({_pct(c.get('ci_low'))} – {_pct(c.get('ci_high'))})</td>"
            f"<td>{html.escape(', '.join(map(str, _list(c.get('terms')))))}</td></tr>"
        )
        for e in _list(c.get("examples")):
            examples += (
                f"<details><summary>cluster {c.get('cluster')} · {name} · {html.escape(str(e.get('conversation_id')))}"
                f"</summary><div class='msg user'><b>user</b> {html.escape(_short(e.get('request', '')))}</div>"
                f"<div class='msg assistant'><b>candidate</b> {html.escape(_short(e.get('candidate', '')))}</div>"
                f"<div class='msg assistant'><b>baseline</b> {html.escape(_short(e.get('baseline', '')))}</div>"
                f"{judge_line}</details>"
            )
    return (
        "<h2>Possible new failure modes</h2><p>Conversations where the candidate's answer differs most from the "
        "baseline's and no taxonomy grader flagged it, clustered by their words; named by the judge where one is "
        "configured. Not gated: read the examples, "
        "and promote a cluster into the taxonomy with <code>deploysim discover promote</code>.</p>"
        '<table id="discover"><thead><tr><th>cluster</th><th>name</th><th>judge</th><th>size</th>'
        "<th>share of traffic (95% interval)</th><th>top terms</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{examples}"
    )


def discover_markdown(clusters: list[dict[str, Any]]) -> str:
    """The clusters as a Markdown table (the discover asset's metadata and summaries)."""
    if not clusters:
        return "No possible new failure modes: no cluster of dissimilar answers."
    lines = ["| cluster | name | judge | size | share (95% interval) | top terms |", "|---|---|---|---|---|---|"]
    for c in clusters:
        terms = ", ".join(map(str, _list(c.get("terms"))))
        name = str(c.get("name") or "").replace("|", "/")
        lines.append(
            f"| {c.get('cluster')} | {name} | {_judged(c).replace('|', '/')} | {c.get('size')} | "
            f"{_pct(c.get('share'))} ({_pct(c.get('ci_low'))}–{_pct(c.get('ci_high'))}) | {terms.replace('|', '/')} |"
        )
    return "\n".join(lines)
