"""What the operator's console shows of each step: scalars formatted for reading (percentages,
dollars) and small tables. Plain data: the Dagster wiring turns a Table into table metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERDICTS = {"pass": "PASSED", "fail": "BLOCKED", "inconclusive": "INCONCLUSIVE"}


@dataclass
class Column:
    name: str
    type: str = "string"  # string, int, float or bool
    description: str = ""


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)


def pct(x: float | None, digits: int = 2) -> str:
    """0.0237 -> "2.37%"; None -> "-"."""
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def pct_value(x: float | None) -> float | None:
    """A fraction as a percentage number (0.98333 -> 98.33), for metadata named *_pct."""
    return None if x is None else round(100 * x, 2)


def pts(x: float | None) -> str:
    """A difference of rates in percentage points: 0.012 -> "+1.20 pts"."""
    return "-" if x is None else f"{100 * x:+.2f} pts"


def usd(x: float | None) -> str:
    """0.01234 -> "$0.0123"."""
    return "-" if x is None else f"${x:,.4f}"


def interval(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"{pct(lo)} to {pct(hi)}"


def _table(spec: list[tuple[str, str, str]], rows: list[dict[str, Any]]) -> Table:
    return Table([Column(n, t, d) for n, t, d in spec], rows)


ESTIMATE_COLUMNS = [
    ("behaviour", "string", ""),
    ("rate", "string", "weighted prevalence in the candidate's turns"),
    ("ci", "string", "interval of the rate"),
    ("baseline", "string", "the baseline's rate on the same conversations"),
    ("difference", "string", "candidate minus baseline, percentage points"),
    ("flagged", "int", "candidate turns flagged by the primary grader"),
    ("applicable", "int", "candidate turns where the behaviour applies"),
    ("corrected", "string", "PPI++ grader-corrected rate and interval (human labels)"),
    ("labels", "int", "human-labelled turns behind the corrected rate"),
    ("more_needed", "int", "further conversations the planner expects to decide the rate"),
]


def estimate_table(rows: list[dict[str, Any]]) -> Table:
    """One row per behaviour from the estimate's rows (deploysim.schemas.Estimate fields)."""
    out = []
    for e in sorted(rows, key=lambda e: e["behaviour"]):
        corrected = "-"
        if e.get("ppi_rate") is not None:
            corrected = f"{pct(e['ppi_rate'])} ({interval(e.get('ppi_ci_low'), e.get('ppi_ci_high'))})"
        out.append(
            {
                "behaviour": e["behaviour"],
                "rate": pct(e["rate"]),
                "ci": interval(e["ci_low"], e["ci_high"]),
                "baseline": pct(e["baseline_rate"]),
                "difference": f"{pts(e['diff'])} ({pts(e['diff_ci_low'])} to {pts(e['diff_ci_high'])})",
                "flagged": e["n_flagged"],
                "applicable": e["n_applicable"],
                "corrected": corrected,
                "labels": e.get("n_labelled") or 0,
                "more_needed": e.get("more_needed"),
            }
        )
    return _table(ESTIMATE_COLUMNS, out)


def estimate_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """run_estimate's result for the console: the estimates as a table, the highest rate as a scalar."""
    meta = dict(meta)
    rows = meta.pop("estimates")
    meta["estimates"] = estimate_table(rows)
    meta["behaviours"] = len(rows)
    if rows:
        top = max(rows, key=lambda e: e["rate"])
        meta["highest_rate"] = f"{top['behaviour']} {pct(top['rate'])}"
    meta["labelled_behaviours"] = sum(1 for e in rows if e.get("ppi_rate") is not None)
    return meta


GRADE_COLUMNS = [
    ("behaviour", "string", ""),
    ("grader", "string", "the behaviour's primary grader"),
    ("candidate_flagged", "int", "candidate turns the primary grader flagged"),
    ("candidate_applicable", "int", "candidate turns where it applies"),
    ("candidate_share", "string", "flagged among applicable, unweighted"),
    ("baseline_flagged", "int", "baseline turns the primary grader flagged"),
    ("baseline_applicable", "int", "baseline turns where it applies"),
    ("judge_flagged", "int", "candidate turns the LLM judge flagged (when a judge ran)"),
]


def grade_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """run_grade's result for the console: per-behaviour counts as a table, the judge's as scalars."""
    meta = dict(meta)
    per = meta.pop("per_behaviour")
    meta.pop("flagged", None)
    rows = []
    for r in per:
        share = r["candidate_flagged"] / r["candidate_applicable"] if r["candidate_applicable"] else None
        rows.append(r | {"candidate_share": pct(share)})
    meta["behaviours"] = _table(GRADE_COLUMNS, rows)
    meta["graders"] = ", ".join(meta["graders"])
    judge = meta.pop("judge", None)
    if judge:
        meta |= {
            "judge_model": judge["model"],
            "judge_calls": judge["calls"],
            "judge_cached": judge["cached"],
            "judge_reasks": judge["reasks"],
            "judge_no_verdict": sum(judge["no_verdict"].values()),
        }
    return meta


LABEL_COLUMNS = [
    ("behaviour", "string", ""),
    ("system", "string", "candidate or baseline"),
    ("present", "int", "labelled present"),
    ("absent", "int", "labelled absent"),
    ("not_applicable", "int", "labelled na (the behaviour does not apply)"),
]


def labels_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """run_labels's result for the console: its `split` table stands for the per-behaviour counts."""
    return {k: v for k, v in meta.items() if k != "per_behaviour"}


def labels_table(rows: list[dict[str, Any]]) -> Table:
    """Per behaviour and system, how the human labels split (label True, False or None)."""
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        c = counts.setdefault(
            (r["behaviour"], r["system"]),
            {"behaviour": r["behaviour"], "system": r["system"], "present": 0, "absent": 0, "not_applicable": 0},
        )
        c["not_applicable" if r["label"] is None else "present" if r["label"] else "absent"] += 1
    return _table(LABEL_COLUMNS, [counts[k] for k in sorted(counts)])


ACCOUNTING_COLUMNS = [("item", "string", ""), ("value", "string", "")]
FAILURE_COLUMNS = [
    ("class", "string", "failure class"),
    ("count", "int", "items that ended in it"),
    ("label", "string", ""),
    ("example", "string", "one reason, redacted"),
]


def replay_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The replay's accounting (pipeline.replay_summary) for the console: completeness in percent,
    cost in dollars, failure classes and tool-result sources as tables."""
    meta = dict(meta)
    completeness = meta.pop("completeness", None)
    cost = meta.pop("cost_usd", None)
    failures = meta.pop("failure_classes", None) or []
    tools = meta.pop("tool_results", None) or {}
    meta.pop("top_errors", None)  # the failure classes carry an example of each
    meta["completeness_pct"] = pct_value(completeness)
    meta["cost"] = usd(cost)
    meta["accounting"] = _table(
        ACCOUNTING_COLUMNS,
        [
            {"item": "replayed", "value": f"{meta.get('ok', 0)} of {meta.get('replayed', 0)} ({pct(completeness)})"},
            {"item": "answers", "value": f"{meta.get('answers', 0)} ({meta.get('cached_answers', 0)} from the cache)"},
            {"item": "HTTP calls", "value": str(meta.get("http_calls", 0))},
            {
                "item": "tokens",
                "value": f"{meta.get('prompt_tokens', 0):,} prompt, {meta.get('completion_tokens', 0):,} completion",
            },
            {"item": "cost", "value": usd(cost)},
            *({"item": f"tool results: {k}", "value": str(v)} for k, v in sorted(tools.items())),
        ],
    )
    meta["failures"] = _table(
        FAILURE_COLUMNS, [{k: f[k] for k in ("class", "count", "label", "example")} for f in failures]
    )
    if not meta.get("endpoint_unusable"):
        meta.pop("endpoint_unusable", None)
    return meta


GATE_COLUMNS = [
    ("behaviour", "string", ""),
    ("status", "string", "pass, fail, inconclusive or no_threshold"),
    ("rate", "string", "the candidate's rate"),
    ("ci", "string", "interval of the rate"),
    ("max_rate", "string", "the gate's limit"),
    ("baseline", "string", "the baseline's rate"),
    ("difference", "string", "candidate minus baseline, with its interval"),
    ("more_needed", "int", "further conversations expected to decide an inconclusive rate"),
    ("reason", "string", ""),
]


def gate_table(gate: list[dict[str, Any]]) -> Table:
    """One row per behaviour of a gate evaluation (release_gate rows)."""
    rows = [
        {
            "behaviour": r["behaviour"],
            "status": r["status"],
            "rate": pct(r["rate"]),
            "ci": interval(r.get("ci_low"), r.get("ci_high")),
            "max_rate": pct(r.get("max_rate")),
            "baseline": pct(r.get("baseline_rate")),
            "difference": f"{pts(r.get('diff'))} ({pts(r.get('diff_ci_low'))} to {pts(r.get('diff_ci_high'))})",
            "more_needed": r.get("more_needed"),
            "reason": r.get("reason") or "",
        }
        for r in sorted(gate, key=lambda r: r["behaviour"])
    ]
    return _table(GATE_COLUMNS, rows)


def decision_markdown(
    candidate: str, verdict: str, gate: list[dict[str, Any]], completeness: float | None = None
) -> str:
    """The verdict, the reason of each failing or undecided behaviour, and the gate at a glance."""
    lines = [f"## {candidate}: {verdict}", ""]
    fails = [r for r in gate if r["status"] == "fail"]
    undecided = [r for r in gate if r["status"] == "inconclusive"]
    if fails:
        lines += ["**Blocked by:**", *(f"- `{r['behaviour']}`: {r['reason']}" for r in fails), ""]
        if undecided:
            lines += ["Also undecided: " + ", ".join(f"`{r['behaviour']}`" for r in undecided) + ".", ""]
    elif undecided:  # the rate's part of the reason: how many more conversations would decide it
        lines += ["**Undecided:**"]
        lines += [f"- `{r['behaviour']}`: {r['reason'].split('; vs baseline')[0]}" for r in undecided] + [""]
    if not fails and not undecided:
        lines += ["All gated behaviours are within their thresholds.", ""]
    if completeness is not None:
        lines += [f"Replay completeness: {pct(completeness)}.", ""]
    lines += ["| behaviour | status | rate (CI) | limit | vs baseline |", "|---|---|---|---|---|"]
    for r in sorted(gate, key=lambda r: r["behaviour"]):
        lines.append(
            f"| {r['behaviour']} | {r['status']} | {pct(r['rate'])} ({interval(r.get('ci_low'), r.get('ci_high'))}) "
            f"| {pct(r.get('max_rate'))} | {pts(r.get('diff'))} |"
        )
    return "\n".join(lines) + "\n"


CALIBRATION_COLUMNS = [
    ("behaviour", "string", ""),
    ("grader", "string", ""),
    ("labelled", "int", "turns the humans say it applies to"),
    ("precision", "string", "flagged turns the humans confirm"),
    ("recall", "string", "present turns the grader flagged"),
    ("kappa", "float", "Cohen's kappa of grader against humans"),
    ("domain_agreement", "string", "how often the grader's 'applies' matches the humans'"),
]


def calibration_table(rows: list[dict[str, Any]]) -> Table:
    """Graders against human labels (CalibrationRow.as_dict rows)."""
    out = [
        {
            "behaviour": r["behaviour"],
            "grader": r["grader"],
            "labelled": r["n"],
            "precision": pct(r.get("precision"), 1),
            "recall": pct(r.get("recall"), 1),
            "kappa": None if r.get("kappa") is None else round(r["kappa"], 3),
            "domain_agreement": pct(r.get("domain_agreement"), 1),
        }
        for r in rows
    ]
    return _table(CALIBRATION_COLUMNS, out)


REPLAY_SUMMARY_COLUMNS = [
    ("candidate", "string", ""),
    ("replayed", "int", "sampled conversations"),
    ("ok", "int", "replayed without a terminal error"),
    ("errors", "int", ""),
    ("completeness", "string", ""),
    ("http_calls", "int", ""),
    ("cached_calls", "int", ""),
    ("tokens", "int", "prompt and completion tokens"),
]


def replay_summary_table(rows: list[dict[str, Any]]) -> Table:
    """The replay_summary model's rows (one per candidate)."""
    out = [
        {
            "candidate": r["candidate"],
            "replayed": r["n"],
            "ok": r["n_ok"],
            "errors": r["n_error"],
            "completeness": pct(r["completeness"]),
            "http_calls": r["http_calls"],
            "cached_calls": r["cached_calls"],
            "tokens": r["tokens"],
        }
        for r in rows
    ]
    return _table(REPLAY_SUMMARY_COLUMNS, out)


def report_metadata(meta: dict[str, Any], candidate: str) -> dict[str, Any]:
    """run_report's result for the console: the verdict and reasons as Markdown, the gate and the
    calibration (graders against human labels) as tables."""
    meta = dict(meta)
    gate = meta.pop("gate_rows", [])
    calib = meta.pop("calibration", [])
    meta["markdown"] = decision_markdown(candidate, meta["verdict"], gate, meta.pop("completeness", None))
    meta["failing"] = ", ".join(meta.get("failing") or []) or "none"
    meta["gate_file"] = meta.pop("gate", None)  # dbt's export this report read
    meta["gate"] = gate_table(gate)
    if calib:
        meta["calibration"] = calibration_table(calib)
    return meta


OBSERVED_COLUMNS = [
    ("behaviour", "string", ""),
    ("rate", "string", "observed in production"),
    ("ci", "string", "interval of the rate"),
    ("applicable", "int", "production turns where the behaviour applies"),
]


def observed_table(rows: list[dict[str, Any]]) -> Table:
    """A released candidate's observed production rates (deploysim.estimation.observe rows)."""
    out = [
        {
            "behaviour": r["behaviour"],
            "rate": pct(r["rate"]),
            "ci": interval(r["ci_low"], r["ci_high"]),
            "applicable": r["n_applicable"],
        }
        for r in rows
    ]
    return _table(OBSERVED_COLUMNS, out)


def decision_metadata(candidate: str, decision: dict[str, Any] | None, gate: list[dict[str, Any]]) -> dict[str, Any]:
    """A release_decision row (and the run's gate rows) for the console: the verdict and its reasons
    as Markdown and scalars, the gate as a table. {} when the run recorded no decision."""
    if decision is None:
        return {}
    verdict = VERDICTS.get(decision["decision"], str(decision["decision"]).upper())
    return {
        "markdown": decision_markdown(candidate, verdict, gate, decision.get("completeness")),
        "verdict": verdict,
        "reasons": decision.get("reasons") or "",
        "failed": decision.get("n_failed") or 0,
        "undecided": decision.get("n_inconclusive") or 0,
        "more_needed": decision.get("more_needed"),
        "completeness_pct": pct_value(decision.get("completeness")),
        "gate": gate_table(gate),
    }
