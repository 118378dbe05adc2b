"""Grading logs that were already answered: what production did (observed rates for the scorecard).

`grade_logs` reads log files of any supported format, redacts every conversation in memory and grades
each conversation's logged turn (what the assistant did after the last user message) with the
taxonomy's graders. Logs are the whole traffic they hold (not a sample), so a rate is a plain share
with a Wilson interval. Used by `deploysim grade` and by the pipeline's `observed` step.
"""

from __future__ import annotations

from typing import Any

from deploysim import rules
from deploysim.grading import graders as G


def signals(turn: list) -> dict[str, Any]:
    """Response-level signals behind the verdicts."""
    text = G.final_text(turn)
    calls = [c.name for m in turn if m.role == "assistant" for c in m.tool_calls]
    out_ph = set()
    for m in turn:
        if m.role == "assistant":
            out_ph |= rules.placeholders(m.content)
    return {
        "refused": rules.is_refusal(text),
        "chars": len(text),
        "tool_calls": len(calls),
        "tools_called": calls,
        "placeholders": sorted(out_ph),
    }


def grade_conversations(convs: list, graders: list, primary: dict[str, str]) -> tuple[list[dict], dict[str, list[int]]]:
    """Lines (one per conversation x grader) and per behaviour [applicable, flagged] counts of the
    primary grader. A grader that gave no verdict leaves the turn out of its behaviour's domain."""
    todo = [c for c in convs if any(m.role == "assistant" for m in c.logged_turn())]  # something to grade
    turns = {c.conversation_id: c.logged_turn() for c in todo}
    grades = G.grade_turns(todo, turns, "baseline", graders)
    sig = {cid: signals(t) for cid, t in turns.items()}
    lines: list[dict] = []
    counts: dict[str, list[int]] = {}
    for g in grades:
        lines.append(
            {
                "conversation_id": g.conversation_id,
                "behaviour": g.behaviour,
                "grader": g.grader,
                "applicable": g.applicable,
                "verdict": ("flagged" if g.flagged else "not_flagged") if g.applicable else "not_applicable",
                "flagged": g.flagged,
                "detail": g.detail,
                "signals": sig[g.conversation_id],
            }
        )
        if g.grader == primary.get(g.behaviour):
            c = counts.setdefault(g.behaviour, [0, 0])
            c[0] += g.applicable
            c[1] += g.flagged
    return lines, counts


def rates(counts: dict[str, list[int]], order: list[str]) -> list[dict[str, Any]]:
    from deploysim.estimation.stats import wilson

    out = []
    for b in order:
        n, k = counts.get(b, [0, 0])
        lo, hi = wilson(k, n)
        out.append(
            {
                "behaviour": b,
                "n_applicable": n,
                "n_flagged": k,
                "rate": k / n if n else 0.0,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return out


def grade_logs(paths: list[str], tax, judge=None, fmt: str | None = None) -> tuple[int, int, list[dict], list[dict]]:
    """(conversations graded, records quarantined, lines, per-behaviour rates) for log files."""
    from deploysim.grading import taxonomy
    from deploysim.logs.ingest import ingest_files, input_files
    from deploysim.privacy.redaction import redact_conversations

    graders = taxonomy.graders_for(tax, judge=judge)
    ing = ingest_files(input_files(paths), fmt)
    convs, _ = redact_conversations(ing.conversations)
    lines, counts = grade_conversations(convs, graders, tax.primary_graders())
    return len(convs), len(ing.quarantine), lines, rates(counts, [b.id for b in tax.behaviours])
