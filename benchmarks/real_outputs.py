"""Graders and estimates on real model outputs with human labels (issue 11's benchmark).

    .venv/bin/python benchmarks/real_outputs.py [--part held|build|all] [--draws 200] [--markdown]

Each labelled set of ../shared/data (HarmBench classifier validation, GPTFuzz, Latent Jailbreak,
AgentDojo) is written as an OpenAI chat JSONL log and graded as a user would grade logs
(`deploysim grade`: ingest, redaction, the taxonomy's graders). Per set x behaviour it prints:
the conversations in scope by the labels and by the graders (and their ratio), the human rate,
the graders' rate with its 95% Wilson interval, whether that holds the human rate, the error ratio
(rates floored at 1%), the graders' precision/recall/kappa against the labels, and the corrected
(PPI++ ratio) rate's coverage of the human rate when a random 10% or 20% of the conversations is
labelled (--draws random label draws). The split is deploysim.grading.realdata's: `held` (the
default) is the part nothing was tuned on.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from deploysim.estimation import stats
from deploysim.estimation.observe import grade_logs
from deploysim.grading import realdata, taxonomy
from deploysim.grading.calibration import agreement


@dataclass
class Unit:
    """One conversation: the humans' domain (a) and verdict (y), the graders' (ga, gy)."""

    id: str
    a: bool
    y: bool
    ga: bool = False
    gy: bool = False


def _chat(uid: str, request: str, response: str) -> dict:
    return {"id": uid, "messages": [{"role": "user", "content": request}, {"role": "assistant", "content": response}]}


def _sets(part: str) -> dict[str, tuple[str, list[dict], dict[str, tuple[bool, bool]]]]:
    """set -> (behaviour, log records, id -> (in scope by labels, present by labels))."""
    keep = {"held": lambda h: h, "build": lambda h: not h, "all": lambda h: True}[part]
    out: dict[str, tuple[str, list[dict], dict[str, tuple[bool, bool]]]] = {}
    for name, reader in (("harmbench", realdata.harmbench), ("gptfuzz", realdata.gptfuzz), ("latent", realdata.latent)):
        rows = [o for o in reader() if keep(o.held) and o.complied is not None]
        # plain ids: the redactor pseudonymises ids that read like personal data ("...-pregnant_women-12")
        out[name] = (
            "harmful_compliance",
            [_chat(f"{name}-{k}", o.request, o.response) for k, o in enumerate(rows)],
            {f"{name}-{k}": (True, bool(o.complied)) for k, o in enumerate(rows)},
        )
    traces = [t for t in realdata.agentdojo() if keep(t.held) and not (t.attacked and t.followed is None)]
    for model in sorted({t.model for t in traces}):
        ts = [t for t in traces if t.model == model]
        out[f"agentdojo/{model}"] = (
            "injection_following",
            [{"id": f"agentdojo-{k}", "messages": t.messages} for k, t in enumerate(ts)],
            {f"agentdojo-{k}": (t.injection_reached, bool(t.followed)) for k, t in enumerate(ts)},
        )
    return out


def _grade(records: list[dict], behaviour: str, tax) -> dict[str, tuple[bool, bool]]:
    """id -> (grader applies, grader flagged), through ingest, redaction and the primary grader."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        _, _, lines, _ = grade_logs([str(path)], tax)
    primary = tax.primary_graders()[behaviour]
    return {
        ln["conversation_id"]: (bool(ln["applicable"]), bool(ln["applicable"] and ln["flagged"]))
        for ln in lines
        if ln["grader"] == primary
    }


def _floor(x: float) -> float:
    return max(x, 0.01)


def corrected_coverage(units: list[Unit], share: float, draws: int, seed: int = 0) -> tuple[float, float]:
    """(coverage of the human rate, mean interval width) of the corrected estimate over random label draws."""
    truth_n = sum(u.a for u in units)
    truth = sum(u.a and u.y for u in units) / truth_n if truth_n else 0.0
    rng = random.Random(seed)
    n_lab = max(2, round(share * len(units)))
    hits = width = 0.0
    for _ in range(draws):
        picked = set(rng.sample(range(len(units)), n_lab))
        sums = stats.RatioSums()
        for i, u in enumerate(units):
            lab = i in picked
            sums.add(1.0, u.ga, u.gy, (u.y if u.a else None) if lab else None, labelled=lab)
        est = stats.ppi_ratio(sums)
        hits += est.ci_low <= truth <= est.ci_high
        width += est.ci_high - est.ci_low
    return hits / draws, width / draws


def measure(part: str, draws: int) -> list[dict]:
    tax = taxonomy.load()
    rows = []
    for name, (behaviour, records, labels) in _sets(part).items():
        t0 = time.perf_counter()
        graded = _grade(records, behaviour, tax)
        units = [Unit(i, a, y, *graded.get(i, (False, False))) for i, (a, y) in labels.items()]
        missing = sum(i not in graded for i in labels)  # quarantined by ingest: counted as out of scope
        in_h = sum(u.a for u in units)
        in_g = sum(u.ga for u in units)
        h = sum(u.a and u.y for u in units) / in_h if in_h else 0.0
        k = sum(u.gy for u in units)
        r = k / in_g if in_g else 0.0
        lo, hi = stats.wilson(k, in_g)
        ag = agreement(name, [(u.gy, u.a and u.y) for u in units])
        row = {
            "set": name,
            "behaviour": behaviour,
            "n": len(units),
            "not_graded": missing,
            "in_scope_labels": in_h,
            "in_scope_graders": in_g,
            "scope_ratio": in_g / in_h if in_h else float("nan"),
            "human_rate": h,
            "grader_rate": r,
            "ci_low": lo,
            "ci_high": hi,
            "covered": in_g > 0 and lo <= h <= hi,  # an empty domain holds nothing
            "error_ratio": max(_floor(r), _floor(h)) / min(_floor(r), _floor(h)),
            "precision": ag.precision,
            "recall": ag.recall,
            "kappa": ag.kappa,
            "seconds": time.perf_counter() - t0,
        }
        for share in (0.10, 0.20):
            cov, width = corrected_coverage(units, share, draws)
            row[f"corrected_{int(share * 100)}_coverage"] = cov
            row[f"corrected_{int(share * 100)}_width"] = width
        rows.append(row)
        print(
            f"  {name}: {len(units) - missing} conversations graded in {row['seconds']:.1f} s"
            + (f" ({missing} not graded: quarantined by ingest)" if missing else ""),
            file=sys.stderr,
        )
    return rows


def table(rows: list[dict], markdown: bool = False) -> str:
    head = [
        "set",
        "behaviour",
        "n",
        "scope (graders/labels)",
        "human",
        "graders [95% CI]",
        "covered",
        "error ratio",
        "precision",
        "recall",
        "kappa",
        "corrected 10%: coverage",
        "corrected 20%: coverage",
    ]
    body = []
    for r in rows:
        body.append(
            [
                r["set"],
                r["behaviour"],
                str(r["n"]),
                f"{r['in_scope_graders']}/{r['in_scope_labels']} = {r['scope_ratio']:.2f}",
                f"{r['human_rate']:.1%}",
                f"{r['grader_rate']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]",
                "yes" if r["covered"] else "no",
                f"{r['error_ratio']:.2f}",
                f"{r['precision']:.2f}",
                f"{r['recall']:.2f}",
                f"{r['kappa']:.2f}",
                f"{r['corrected_10_coverage']:.1%} (width {r['corrected_10_width']:.1%})",
                f"{r['corrected_20_coverage']:.1%} (width {r['corrected_20_width']:.1%})",
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*head), "-" * (sum(widths) + 2 * len(widths))] + [fmt.format(*b) for b in body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("held", "build", "all"), default="held")
    ap.add_argument("--draws", type=int, default=200, help="random label draws per share (coverage)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    if not realdata.default_root().exists():
        sys.exit(f"no shared data at {realdata.default_root()}")
    rows = measure(a.part, a.draws)
    print(f"part: {a.part} (deploysim.grading.realdata's split); corrected: PPI++ ratio over {a.draws} label draws")
    print(table(rows, a.markdown))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
