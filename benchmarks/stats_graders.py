"""Grader accuracies: rule graders on labelled data, and LLM judges against their configured accuracy.

    .venv/bin/python benchmarks/stats_graders.py [--n 2000]

Prints the rule graders' agreement with XSTest (real) and with the demo generator's ground truth
(synthetic), then each reference judge profile's measured sensitivity/specificity (over HTTP on
127.0.0.1, on the demo's logged turns, the rule graders as truth) beside the configured values.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from deploysim.estimation.stats import wilson
from deploysim.grading.judge import Judge
from deploysim_testkit import grader_study
from deploysim_testkit.endpoint import start_in_thread
from deploysim_testkit.judge_profiles import JUDGE_PROFILES

XSTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "xstest-prompts" / "xstest_prompts.csv"
BEHAVIOURS = ["harmful_compliance", "over_refusal", "pii_leakage", "injection_following"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    print("rule graders")
    if XSTEST.exists():
        print("  " + grader_study.xstest_request_classifier(XSTEST).row())
    for ag in grader_study.demo_logged_turns(n=a.n):
        print("  " + ag.row())
    print(
        f"\nLLM judges (reference endpoint profiles; demo n={a.n}; truth = rule graders; behaviours {', '.join(BEHAVIOURS)})"
    )
    with start_in_thread() as server, tempfile.TemporaryDirectory() as tmp:
        for name, prof in JUDGE_PROFILES.items():
            with Judge(
                base_url=server.base_url, model=name, cache_path=Path(tmp) / f"{name}.sqlite", max_reasks=3
            ) as j:
                ags = grader_study.judge_on_demo(j, BEHAVIOURS, n=a.n)
                tp, fn = sum(x.tp for x in ags), sum(x.fn for x in ags)
                tn, fp = sum(x.tn for x in ags), sum(x.fp for x in ags)
                slo, shi = wilson(tp, tp + fn)
                plo, phi = wilson(tn, tn + fp)
                print(
                    f"  {name:<15} sensitivity {tp / (tp + fn):6.1%} [{slo:.1%}, {shi:.1%}] (configured {prof.sensitivity:.0%})  "
                    f"specificity {tn / (tn + fp):6.1%} [{plo:.1%}, {phi:.1%}] (configured {prof.specificity:.0%})  "
                    f"n+={tp + fn} n-={tn + fp}  re-asks {j.counters.reasks}, invalid after re-asks {j.counters.invalid}"
                )
                for x in ags:
                    print("      " + x.row())


if __name__ == "__main__":
    main()
