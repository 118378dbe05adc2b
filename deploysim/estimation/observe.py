"""Grading logs that were already answered: what production did (observed rates for the scorecard).

`grade_logs` reads log files of any supported format, redacts every conversation in memory and grades
each conversation's logged turn (what the assistant did after the last user message) with the
taxonomy's graders. Logs are the whole traffic they hold (not a sample), so a rate is a plain share
with a Wilson interval. Used by `deploysim grade` and by the pipeline's `observed` step.

With human labels of some conversations (1, 0 or na), `with_labels` gives PPI++ rates that correct
the graders' domain and verdict, and the calibration table of every grader against the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def grade_logs(
    paths: list[str],
    tax,
    judge=None,
    fmt: str | None = None,
    id_map: dict[str, str] | None = None,
    fields=None,
) -> tuple[int, int, list[dict], list[dict]]:
    """(conversations graded, records quarantined, lines, per-behaviour rates) for log files.

    id_map (optional) is filled with each log's conversation id -> the id in the lines (redaction
    replaces an id that holds personal data by a pseudonym), so labels can name either."""
    from deploysim.grading import taxonomy
    from deploysim.logs.ingest import ingest_files, input_files
    from deploysim.privacy.redaction import iter_redacted

    graders = taxonomy.graders_for(tax, judge=judge)
    ing = ingest_files(input_files(paths), fmt, fields=fields)  # fields: a formats.documents.FieldMap
    convs = []
    for orig, (red, _) in zip(ing.conversations, iter_redacted(ing.conversations)):
        if red is not None:
            convs.append(red)
            if id_map is not None:
                id_map[orig.conversation_id] = red.conversation_id
    lines, counts = grade_conversations(convs, graders, tax.primary_graders())
    return len(convs), len(ing.quarantine), lines, rates(counts, [b.id for b in tax.behaviours])


# ---------------------------------------------------------------------------- human labels of logs


def check_labels(labels: list, behaviours: list[str]) -> dict[tuple[str, str], bool | None]:
    """(conversation_id, behaviour) -> label (None: na) from loaded labels; ValueError for a behaviour
    the taxonomy does not know or for one conversation labelled both ways. Baseline-system rows
    are left out (a log's turn is the logged system's), and so is the `candidate` column."""
    known = set(behaviours)
    unknown = sorted({lab.behaviour for lab in labels} - known)
    if unknown:
        raise ValueError(f"labels name behaviours the taxonomy does not have: {', '.join(unknown)}")
    out: dict[tuple[str, str], bool | None] = {}
    for lab in labels:
        if lab.system != "candidate":
            continue
        key = (lab.conversation_id, lab.behaviour)
        if key in out and out[key] != lab.label:
            raise ValueError(
                f"conversation {lab.conversation_id!r} is labelled twice for {lab.behaviour} (differently)"
            )
        out[key] = lab.label
    return out


@dataclass
class LabelledRates:
    corrected: dict[str, dict[str, Any] | None]  # behaviour -> {rate, ci_low, ci_high, labels} or None
    calibration: list  # calibration.CalibrationRow, per behaviour x grader
    unknown_conversations: int  # labelled conversations not among the graded ones (left out)
    used: int  # labels on graded conversations


def with_labels(
    lines: list[dict],
    labels: dict[tuple[str, str], bool | None],
    primary: dict[str, str],
    order: list[str],
    id_map: dict[str, str] | None = None,
) -> LabelledRates:
    """Corrected rates (PPI++ for the domain ratio, `stats.ppi_ratio`, over every graded conversation
    with equal weights: logs are the whole traffic) and the calibration table of every grader.
    A behaviour needs two labelled conversations for a corrected rate (else None)."""
    from deploysim.estimation.stats import RatioSums, ppi_ratio
    from deploysim.grading.calibration import calibration_table

    id_map = id_map or {}
    graded = {g["conversation_id"] for g in lines}
    human: dict[tuple[str, str], bool | None] = {}
    unknown = set()
    for (cid, beh), lab in labels.items():
        cid = id_map.get(cid, cid)
        if cid in graded:
            human[(cid, beh)] = lab
        else:
            unknown.add(cid)
    verdict: dict[str, dict[str, tuple[bool, bool]]] = {}
    for g in lines:
        if g["grader"] == primary.get(g["behaviour"]):
            verdict.setdefault(g["behaviour"], {})[g["conversation_id"]] = (bool(g["applicable"]), bool(g["flagged"]))
    corrected: dict[str, dict[str, Any] | None] = {}
    for b in order:
        sums = RatioSums()
        n_lab = 0
        for cid in sorted(graded):
            app, flag = verdict.get(b, {}).get(cid, (False, False))
            labelled = (cid, b) in human
            n_lab += labelled
            sums.add(1.0, app, flag, human.get((cid, b)), labelled=labelled)
        if n_lab < 2:
            corrected[b] = None
            continue
        r = ppi_ratio(sums)
        corrected[b] = {"rate": r.rate, "ci_low": r.ci_low, "ci_high": r.ci_high, "labels": n_lab}
    rows = [{"conversation_id": c, "behaviour": b, "label": v} for (c, b), v in human.items()]
    table = calibration_table(lines, rows)
    return LabelledRates(corrected, table, len(unknown), len(human))


def rates_json(table: list[dict[str, Any]], corrected: dict[str, dict[str, Any] | None] | None = None) -> dict:
    """RATES.json: {"behaviours": {b: {flagged, applicable, rate, ci_low, ci_high, corrected}}}."""
    corrected = corrected or {}
    return {
        "behaviours": {
            r["behaviour"]: {
                "flagged": r["n_flagged"],
                "applicable": r["n_applicable"],
                "rate": r["rate"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "corrected": corrected.get(r["behaviour"]),
            }
            for r in table
        }
    }
