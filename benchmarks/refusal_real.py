"""Refusal detection and the harmful-compliance verdict on real model outputs with human labels.

    .venv/bin/python benchmarks/refusal_real.py [--part build|held|both] [--by-model]

Sets (../shared/data, split by deploysim.grading.realdata; `held` is the part nothing was tuned on):

- gptfuzz (gpt-3.5-turbo under 77 jailbreak templates): refused = label 0 (refusal, deflection or no
  harmful content); complied = label 1 (jailbroken).
- latent (Latent Jailbreak; ChatGPT, ChatGLM2-6B, BELLE-7B-2M, mostly Chinese): refused = safety safe and
  following not_follow (the model did not do the translation task; mostly refusals, but also some
  garbled or off-task answers); complied = unsafe (toxic content written).
- harmbench (HarmBench classifier validation, 23 models, attacks): no refusal label. Label 0 covers
  refusals and also off-topic, garbled or harmless answers, so "refused = label 0" is reported as a
  lower bound, not a target. complied = label 1.

(a) refusal agreement with the humans for the detector (refusal.is_refusal) and the GCG/AdvBench
keyword baseline (refusal.keyword_refusal) in the same run; (b) the compliance verdict
(compliance.verdicts) against the human label: accuracy, precision, recall, Cohen's kappa, the human
rate, the verdict's rate with its 95% Wilson interval, whether that holds the human rate, and the
error ratio max(r, h) / min(r, h) with both floored at 1%.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from deploysim.estimation.stats import wilson
from deploysim.grading import compliance, realdata, refusal
from deploysim.grading.calibration import agreement

REFUSED = {
    "gptfuzz": lambda x: not x.complied,
    "latent": lambda x: x.extra["safety"] == "safe" and x.extra["following"] == "not_follow",
    "harmbench": lambda x: not x.complied,
}
LABELLED = {"gptfuzz": True, "latent": True, "harmbench": False}  # refusal labelled (else a lower bound)


def row(name: str, xs: list, verdicts: list[bool], refusals: list[bool], keywords: list[bool]) -> dict:
    gold_ref = [REFUSED[name](x) for x in xs]
    gold = [bool(x.complied) for x in xs]
    n = len(xs)
    ag = agreement(name, zip(verdicts, gold))
    k, h = sum(verdicts), sum(gold)
    lo, hi = wilson(k, n)
    r, hr = k / n, h / n
    return {
        "n": n,
        "ref_new": sum(p == g for p, g in zip(refusals, gold_ref)) / n,
        "ref_kw": sum(p == g for p, g in zip(keywords, gold_ref)) / n,
        "acc": ag.accuracy,
        "prec": ag.precision,
        "rec": ag.recall,
        "kappa": ag.kappa,
        "human": hr,
        "rate": r,
        "lo": lo,
        "hi": hi,
        "holds": lo <= hr <= hi,
        "ratio": max(max(r, 0.01), max(hr, 0.01)) / min(max(r, 0.01), max(hr, 0.01)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["build", "held", "both"], default="both")
    ap.add_argument("--by-model", action="store_true", help="also one row per model")
    args = ap.parse_args(argv)
    root = realdata.default_root()
    if not root.exists():
        print(f"needs the shared data at {root}", file=sys.stderr)
        return 2
    parts = {"build": [False], "held": [True], "both": [False, True]}[args.part]
    head = (
        f"{'set':<34} {'n':>5}  {'refusal agr':>11} {'keywords':>8}  {'acc':>5} {'prec':>5} {'rec':>5} {'kappa':>5}"
        f"  {'human':>6} {'grader [95% CI]':>22} {'holds':>5} {'ratio':>5}"
    )
    for name in ("gptfuzz", "harmbench", "latent"):
        data = getattr(realdata, name)(root)
        for held in parts:
            xs = [x for x in data if x.held == held and x.complied is not None]
            vs = compliance.verdicts([(x.request, x.response) for x in xs])
            verdicts = [v.complied for v in vs]
            refusals = [refusal.is_refusal(x.response) for x in xs]
            keywords = [refusal.keyword_refusal(x.response) for x in xs]
            groups: dict[str, list[int]] = defaultdict(list)
            groups[f"{name} {'held' if held else 'build'}"] = list(range(len(xs)))
            if args.by_model:
                for i, x in enumerate(xs):
                    groups[f"  {x.model}"].append(i)
            print(head if name == "gptfuzz" and held == parts[0] else "")
            for label, idx in groups.items():
                sub = [xs[i] for i in idx]
                s = row(name, sub, [verdicts[i] for i in idx], [refusals[i] for i in idx], [keywords[i] for i in idx])
                mark = "" if LABELLED[name] else "*"
                print(
                    f"{label:<34} {s['n']:>5}  {s['ref_new']:>10.3f}{mark:1} {s['ref_kw']:>8.3f}  {s['acc']:>5.3f}"
                    f" {s['prec']:>5.3f} {s['rec']:>5.3f} {s['kappa']:>5.2f}  {s['human']:>6.3f}"
                    f" {s['rate']:>6.3f} [{s['lo']:.3f}, {s['hi']:.3f}] {'yes' if s['holds'] else 'no':>5}"
                    f" {s['ratio']:>5.2f}"
                )
    print(
        "\n* harmbench labels no refusal: 'refused' = label 0, which also covers off-topic and harmless answers."
        "\nrefusal agr: refusal.is_refusal vs the humans; keywords: the GCG/AdvBench refusal strings."
        "\nratio: max(rate, human) / min(rate, human), both floored at 1%."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
