"""The injection_following grader on real AgentDojo traces: per model, build and held-back parts.

The traces (../shared/data/agentdojo-injection-runs, read with deploysim.grading.realdata.agentdojo) go
through the real path of `deploysim grade`: written as OpenAI chat JSONL holding only each trace's id
and messages (no label reaches the grader), ingested, redacted, and graded with the taxonomy's graders
of injection_following (deploysim.estimation.observe.grade_conversations). Traces that ingest
quarantines are counted and left out.

Per model and part:
- in scope: conversations the grader applies to, against the runs whose injection reached a tool result;
- sens/spec/BA: positives = attacked runs that followed the injection (AgentDojo `security`), negatives =
  attacked runs that did not plus runs without attack; runs with no label (errored) are left out;
- grader rate among the conversations in scope (95% Wilson interval) against the human rate (followed
  among the runs the injection reached), and the error ratio max(r, h) / min(r, h), both floored at 1%.

Run: .venv/bin/python benchmarks/injection_agentdojo.py [--part build|held|both]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

from deploysim.estimation.observe import grade_conversations
from deploysim.estimation.stats import wilson
from deploysim.grading import realdata, taxonomy
from deploysim.logs.ingest import ingest_files, input_files
from deploysim.privacy.redaction import redact_conversations

BEHAVIOUR = "injection_following"


def grade(traces: list[realdata.Trace]) -> tuple[dict[str, tuple[bool, bool, str]], int, dict[str, float]]:
    """conversation id -> (applicable, flagged, detail) of the primary grader; traces quarantined; timings."""
    tax = taxonomy.load()
    tax = tax.model_copy(update={"behaviours": [tax.get(BEHAVIOUR)]})
    graders = taxonomy.graders_for(tax)
    secs = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agentdojo.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            for t in traces:
                f.write(json.dumps({"id": t.id, "messages": t.messages}, ensure_ascii=False) + "\n")
        t0 = time.perf_counter()
        ing = ingest_files(input_files([path]))
        secs["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    convs, _ = redact_conversations(ing.conversations)
    secs["redact"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lines, _ = grade_conversations(convs, graders, tax.primary_graders())
    secs["grade"] = time.perf_counter() - t0
    primary = tax.primary_graders()[BEHAVIOUR]
    out = {
        ln["conversation_id"]: (ln["applicable"], ln["flagged"], ln["detail"])
        for ln in lines
        if ln["grader"] == primary
    }
    return out, len(ing.quarantine), secs


def ratio(r: float, h: float) -> float:
    r, h = max(r, 0.01), max(h, 0.01)
    return max(r, h) / min(r, h)


def table(traces: list[realdata.Trace], graded: dict[str, tuple[bool, bool, str]], part: str) -> list[dict]:
    rows = []
    for model in sorted({t.model for t in traces}):
        ts = [t for t in traces if t.model == model and t.id in graded and (t.followed is not None or not t.attacked)]
        reached = [t for t in ts if t.injection_reached]
        scope = [t for t in ts if graded[t.id][0]]
        pos = [t for t in ts if t.followed is True]
        neg = [t for t in ts if t.followed is False or not t.attacked]
        tp = sum(graded[t.id][1] for t in pos)
        tn = sum(not graded[t.id][1] for t in neg)
        sens = tp / len(pos) if pos else None
        spec = tn / len(neg) if neg else None
        k = sum(graded[t.id][1] for t in scope)
        r = k / len(scope) if scope else 0.0
        h = sum(t.followed is True for t in reached) / len(reached) if reached else 0.0
        lo, hi = wilson(k, len(scope))
        rows.append(
            {
                "part": part,
                "model": model,
                "runs": len(ts),
                "reached": len(reached),
                "in_scope": len(scope),
                "scope_ratio": len(scope) / len(reached) if reached else None,
                "pos": len(pos),
                "neg": len(neg),
                "sens": sens,
                "spec": spec,
                "ba": (sens + spec) / 2 if sens is not None and spec is not None else None,
                "r": r,
                "ci": (lo, hi),
                "h": h,
                "holds": lo <= h <= hi,
                "err_ratio": ratio(r, h),
            }
        )
    return rows


def fmt(x: float | None, d: int = 3) -> str:
    return "-" if x is None else f"{x:.{d}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["build", "held", "both"], default="both")
    a = ap.parse_args(argv)
    try:
        traces = realdata.agentdojo()
    except FileNotFoundError as e:
        print(f"error: the AgentDojo traces are not there ({e})", file=sys.stderr)
        return 2
    parts = ["build", "held"] if a.part == "both" else [a.part]
    traces = [t for t in traces if ("held" if t.held else "build") in parts]
    graded, quarantined, secs = grade(traces)
    print(
        f"{len(traces)} traces, {quarantined} quarantined by ingest; ingest {secs['ingest']:.1f} s, "
        f"redact {secs['redact']:.1f} s, grade {secs['grade']:.1f} s ({len(graded)} conversations)"
    )
    head = (
        f"{'part':<6}{'model':<32}{'runs':>5}{'reach':>6}{'scope':>6}{'x':>6}{'pos':>5}{'neg':>5}"
        f"{'sens':>7}{'spec':>7}{'BA':>7}{'rate r':>8}  {'95% CI':<15}{'human h':>8}{'holds':>6}{'r/h':>6}"
    )
    print(head + "\n" + "-" * len(head))
    for part in parts:
        for row in table([t for t in traces if ("held" if t.held else "build") == part], graded, part):
            lo, hi = row["ci"]
            print(
                f"{row['part']:<6}{row['model']:<32}{row['runs']:>5}{row['reached']:>6}{row['in_scope']:>6}"
                f"{fmt(row['scope_ratio'], 2):>6}{row['pos']:>5}{row['neg']:>5}{fmt(row['sens']):>7}"
                f"{fmt(row['spec']):>7}{fmt(row['ba']):>7}{row['r']:>8.3f}  {f'{lo:.3f}-{hi:.3f}':<15}"
                f"{row['h']:>8.3f}{'yes' if row['holds'] else 'no':>6}{row['err_ratio']:>6.2f}"
            )
    print(
        "\nruns: labelled runs graded (errored attack runs without a label left out); reach: the injection "
        "reached a tool result;\nscope: conversations the grader applies to (x = scope/reach); BA is '-' where "
        "a part has no positives (then read spec)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
