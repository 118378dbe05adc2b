"""Validation study of the estimators: simulated replications with known truth.

Each replication draws what a real sample would give (per stratum: units in the behaviour's
domain, units flagged) and runs the same code as the pipeline (`stats.domain_ratio`,
`stats.rate_interval`, `stats.ppi_mean`) on those sufficient statistics. Draws are exact
binomials (geometric skipping, cost proportional to the smaller count), so thousands of
replications take seconds in pure Python.

Used by tests/test_stats_validation.py (assertions) and benchmarks/stats_study.py (the printed study).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from deploysim.estimation import planner, stats

RATES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.10, 0.20)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact Binomial(n, p) draw in O(min(np, n(1-p)) + 1) by skipping geometric gaps."""
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    log_q = math.log1p(-p)
    k, pos = 0, 0
    while True:
        pos += int(math.log(1.0 - rng.random()) / log_q) + 1
        if pos > n:
            return k
        k += 1


@dataclass(frozen=True)
class Stratum:
    share: float  # share of the population
    n: int  # sample size drawn from it
    applicable: float  # share of its units in the behaviour's domain
    rel_rate: float  # its rate relative to the others (scaled to hit the overall rate)


@dataclass(frozen=True)
class Design:
    name: str
    strata: tuple[Stratum, ...]

    @property
    def n(self) -> int:
        return sum(s.n for s in self.strata)

    def stratum_rates(self, rate: float) -> list[float]:
        """Per-stratum rates, proportional to rel_rate, whose domain-weighted mean is `rate`."""
        num = sum(s.share * s.applicable for s in self.strata)
        den = sum(s.share * s.applicable * s.rel_rate for s in self.strata)
        return [min(1.0, rate * num / den * s.rel_rate) for s in self.strata]

    def truth(self, rate: float) -> float:
        ps = self.stratum_rates(rate)
        return sum(s.share * s.applicable * p for s, p in zip(self.strata, ps)) / sum(
            s.share * s.applicable for s in self.strata
        )


# Simple random sampling: one stratum; 80% of conversations are in the behaviour's domain.
SRS = Design("simple random (n=2,000)", (Stratum(1.0, 2000, 0.8, 1.0),))
# Stratified with disproportionate allocation (weights from 5 to 50) and rates that differ 8x.
STRATIFIED = Design(
    "stratified, 4 strata (n=2,000)",
    (
        Stratum(0.50, 500, 0.9, 0.5),
        Stratum(0.30, 600, 0.7, 1.0),
        Stratum(0.15, 500, 0.8, 2.0),
        Stratum(0.05, 400, 0.6, 4.0),
    ),
)
POP = 10_000_000  # population size (sampling fractions negligible, as in a large log corpus)


def draw_sums(rng: random.Random, design: Design, rates: list[float], scale: float = 1.0) -> list[stats.StratumSums]:
    """One replication's per-stratum sums; `scale` multiplies every stratum's applicable share."""
    out = []
    for s, p in zip(design.strata, rates):
        N = s.share * POP
        m = binomial(rng, s.n, s.applicable * scale)
        k = binomial(rng, m, p)
        out.append(stats.StratumSums.from_counts(n=s.n, f=s.n / N, w=N / s.n, m=m, k=k))
    return out


@dataclass(frozen=True)
class Coverage:
    design: str
    rate: float
    reps: int
    covered: int
    mean_width: float
    below: int  # truth below the interval
    above: int  # truth above the interval

    @property
    def share(self) -> float:
        return self.covered / self.reps


SCALE = (0.5, 1.0)


def coverage(design: Design, rate: float, reps: int, seed: int = 0, scale: tuple[float, float] = SCALE) -> Coverage:
    """Share of replications whose 95% interval covers the known rate.

    Each replication draws the size of the behaviour's domain: every stratum's applicable share is
    multiplied by one factor uniform in `scale` (the rate is unchanged). For a rate near 1/n the
    coverage at one fixed n swings between discrete values (a count of 3 is in or out); averaging
    over a realistic spread of domain sizes measures the interval, not that accident.
    """
    rng = random.Random(f"{design.name}:{rate}:{seed}")
    rates, truth = design.stratum_rates(rate), design.truth(rate)
    covered = below = above = 0
    width = 0.0
    for _ in range(reps):
        est = stats.domain_ratio(draw_sums(rng, design, rates, rng.uniform(*scale)))
        lo, hi = stats.rate_interval(est)
        width += hi - lo
        if truth < lo:
            below += 1
        elif truth > hi:
            above += 1
        else:
            covered += 1
    return Coverage(design.name, rate, reps, covered, width / reps, below, above)


# ---------------------------------------------------------------------------- stratified vs SRS


@dataclass(frozen=True)
class WidthComparison:
    rate: float
    n: int
    srs_width: float
    stratified_width: float
    allocation: dict[str, int]
    srs_coverage: float
    stratified_coverage: float

    @property
    def ratio(self) -> float:
        return self.stratified_width / self.srs_width


def concentrated_widths(n: int = 1000, reps: int = 1000, seed: int = 0) -> WidthComparison:
    """A behaviour concentrated in a small stratum: 5% of traffic (say, agent conversations)
    holds nearly all of it (20% there, 0.05% elsewhere; overall about 1%). Same n, same estimator;
    the stratified design allocates by Neyman allocation from the planner."""
    shares = {"chat": 0.95, "agent": 0.05}
    rates = {"chat": 0.0005, "agent": 0.20}
    truth = sum(shares[h] * rates[h] for h in shares)
    alloc = planner.neyman_allocation({h: shares[h] * POP for h in shares}, rates, n, min_per_stratum=50)
    srs = Design("srs", (Stratum(1.0, n, 1.0, 1.0),))
    strat = Design("stratified", tuple(Stratum(shares[h], alloc[h], 1.0, 1.0) for h in shares))
    rng = random.Random(f"concentrated:{seed}")
    res = {}
    for d, prates in ((srs, [truth]), (strat, [rates[h] for h in shares])):
        width, cov = 0.0, 0
        for _ in range(reps):
            lo, hi = stats.rate_interval(stats.domain_ratio(draw_sums(rng, d, prates)))
            width += hi - lo
            cov += lo <= truth <= hi
        res[d.name] = (width / reps, cov / reps)
    return WidthComparison(truth, n, res["srs"][0], res["stratified"][0], alloc, res["srs"][1], res["stratified"][1])


# ---------------------------------------------------------------------------- PPI with a biased judge


@dataclass(frozen=True)
class PPIStudy:
    truth: float
    sensitivity: float
    specificity: float
    n_graded: int
    n_labelled: int
    reps: int
    ppi_coverage: float
    naive_coverage: float
    labels_only_coverage: float
    ppi_width: float
    naive_width: float
    labels_only_width: float
    mean_naive: float
    mean_ppi: float


def ppi_study(
    truth: float = 0.10,
    sensitivity: float = 0.75,
    specificity: float = 0.95,
    n_graded: int = 2000,
    n_labelled: int = 300,
    reps: int = 1000,
    seed: int = 0,
) -> PPIStudy:
    """A judge with known bias grades every sampled conversation; humans label a random subset.

    The uncorrected estimate is the judge's flag rate with its Wilson interval; PPI++ corrects
    it with the labelled subset; 'labels only' is Wilson on the human labels alone.
    """
    rng = random.Random(f"ppi:{seed}")
    cov = {"ppi": 0, "naive": 0, "labels": 0}
    width = {"ppi": 0.0, "naive": 0.0, "labels": 0.0}
    sum_naive = sum_ppi = 0.0

    def judged(n: int) -> tuple[int, int, int, int]:
        """(y=1,f=1), (y=1,f=0), (y=0,f=1), (y=0,f=0) counts among n units."""
        pos = binomial(rng, n, truth)
        tp = binomial(rng, pos, sensitivity)
        fp = binomial(rng, n - pos, 1 - specificity)
        return tp, pos - tp, fp, n - pos - fp

    for _ in range(reps):
        tp, fn, fp, tn = judged(n_labelled)
        utp, ufn, ufp, utn = judged(n_graded - n_labelled)
        f_l = [1.0] * tp + [0.0] * fn + [1.0] * fp + [0.0] * tn
        y_l = [1.0] * (tp + fn) + [0.0] * (fp + tn)
        f_u = [1.0] * (utp + ufp) + [0.0] * (ufn + utn)
        r = stats.ppi_mean(f_u, f_l, y_l)
        k_judge = tp + fp + utp + ufp
        nlo, nhi = stats.wilson(k_judge, n_graded)
        llo, lhi = stats.wilson(tp + fn, n_labelled)
        for key, lo, hi in (("ppi", r.ci_low, r.ci_high), ("naive", nlo, nhi), ("labels", llo, lhi)):
            cov[key] += lo <= truth <= hi
            width[key] += hi - lo
        sum_naive += k_judge / n_graded
        sum_ppi += r.rate
    return PPIStudy(
        truth,
        sensitivity,
        specificity,
        n_graded,
        n_labelled,
        reps,
        cov["ppi"] / reps,
        cov["naive"] / reps,
        cov["labels"] / reps,
        width["ppi"] / reps,
        width["naive"] / reps,
        width["labels"] / reps,
        sum_naive / reps,
        sum_ppi / reps,
    )
