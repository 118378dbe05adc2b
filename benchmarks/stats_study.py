"""Print the estimator validation study: coverage, PPI with a biased judge, stratified vs SRS width.

    .venv/bin/python benchmarks/stats_study.py [--reps 4000]

Every replication runs the pipeline's own estimator (deploysim.estimation.stats) on simulated samples with
known rates (deploysim_testkit.stats_study). Peers in the same run: SRS vs stratified; PPI++ vs the
uncorrected judge rate vs human labels alone.
"""

from __future__ import annotations

import argparse
import time

from deploysim.estimation import planner
from deploysim_testkit import stats_study as S


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4000)
    a = ap.parse_args()
    t0 = time.perf_counter()

    print(f"Coverage of 95% intervals ({a.reps:,} replications per cell; domain share x U{S.SCALE})")
    head = f"{'rate':>7} | " + " | ".join(f"{d.name:^34}" for d in (S.SRS, S.STRATIFIED))
    print(head + "\n" + "-" * len(head))
    for rate in S.RATES:
        cells = []
        for d in (S.SRS, S.STRATIFIED):
            c = S.coverage(d, rate, a.reps)
            cells.append(f"{c.share:6.1%}  width {c.mean_width:7.3%}  miss lo/hi {c.below:>3}/{c.above:<3}")
        print(f"{rate:7.1%} | " + " | ".join(f"{x:^34}" for x in cells))

    r = S.ppi_study(reps=a.reps)
    print(
        f"\nPPI++ with a biased judge (truth {r.truth:.0%}, sensitivity {r.sensitivity}, specificity "
        f"{r.specificity}; {r.n_graded:,} judged, {r.n_labelled} human-labelled; {r.reps:,} replications)"
    )
    print(
        f"  uncorrected judge rate : mean {r.mean_naive:.2%}  coverage {r.naive_coverage:6.1%}  width {r.naive_width:.2%}"
    )
    print(f"  PPI++                  : mean {r.mean_ppi:.2%}  coverage {r.ppi_coverage:6.1%}  width {r.ppi_width:.2%}")
    print(
        f"  human labels only      :              coverage {r.labels_only_coverage:6.1%}  width {r.labels_only_width:.2%}"
    )

    w = S.concentrated_widths(n=1000, reps=a.reps)
    print(
        f"\nBehaviour concentrated in a small stratum (5% of traffic at 20%, rest 0.05%; overall {w.rate:.2%}; n={w.n})"
    )
    print(f"  simple random : width {w.srs_width:.3%}  coverage {w.srs_coverage:.1%}")
    print(
        f"  stratified    : width {w.stratified_width:.3%}  coverage {w.stratified_coverage:.1%}  "
        f"(Neyman allocation {w.allocation})"
    )
    print(f"  width ratio stratified/SRS = {w.ratio:.2f}  ({1 - w.ratio:.0%} narrower)")

    print("\nPlanner")
    for rate, width in ((0.01, 0.01), (0.001, 0.002), (0.05, 0.02)):
        print("  " + planner.conversations_for_width(rate, width, applicable_share=0.8).describe())
    for n in (1_000, 10_000, 100_000):
        print(
            f"  n={n:>7,}: smallest resolvable rate (+/-50%) {planner.resolvable_rate(n):.3%}; "
            f"upper bound when nothing is seen {planner.zero_count_upper_bound(n):.3%}"
        )
    print(f"\n({time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
