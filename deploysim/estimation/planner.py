"""Sample-size planning for prevalence estimates.

- `conversations_for_width`: how many conversations a target 95% interval width needs at an
  expected rate (Wilson interval at the expected count, inflated by the design effect and by the
  share of conversations the behaviour applies to).
- `resolvable_rate`: the smallest rate a sample can resolve, i.e. whose expected interval
  excludes zero with a given relative precision; and `zero_count_upper_bound`, what a sample
  says when nothing was seen.
- `neyman_allocation`: the allocation across strata that minimises the variance for expected rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deploysim.estimation.stats import Z95, wilson


def expected_width(rate: float, n: float, z: float = Z95) -> float:
    """Width of the Wilson interval when the count equals its expectation rate * n."""
    lo, hi = wilson(rate * n, n, z)
    return hi - lo


def _smallest_n(ok, hi: int = 1 << 40) -> int:
    """Smallest positive integer n with ok(n) (ok monotone); raises when even hi fails."""
    if not ok(hi):
        raise ValueError("target not reachable")
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Plan:
    rate: float
    width: float
    applicable_share: float
    design_effect: float
    n_applicable: int  # graded conversations in the behaviour's domain needed
    n_conversations: int  # sampled conversations needed

    def describe(self) -> str:
        return (
            f"rate {self.rate:.3%}, 95% interval width {self.width:.3%}: {self.n_conversations:,} conversations "
            f"({self.n_applicable:,} applicable; applicable share {self.applicable_share:.0%}, "
            f"design effect {self.design_effect:g})"
        )


def conversations_for_width(
    rate: float, width: float, applicable_share: float = 1.0, design_effect: float = 1.0, z: float = Z95
) -> Plan:
    """Conversations needed so the expected 95% interval at `rate` is no wider than `width`."""
    if not 0 < rate < 1 or width <= 0 or not 0 < applicable_share <= 1 or design_effect < 1:
        raise ValueError("need 0 < rate < 1, width > 0, 0 < applicable_share <= 1, design_effect >= 1")
    n_eff = _smallest_n(lambda n: expected_width(rate, n, z) <= width)
    n_app = math.ceil(n_eff * design_effect)
    return Plan(rate, width, applicable_share, design_effect, n_app, math.ceil(n_app / applicable_share))


def resolvable_rate(
    n_conversations: int,
    applicable_share: float = 1.0,
    design_effect: float = 1.0,
    relative_half_width: float = 0.5,
    z: float = Z95,
) -> float:
    """Smallest rate whose expected interval excludes 0 and is within +/- relative_half_width of it.

    With the default 0.5 the interval at the expected count spans at most rate/2 .. 3*rate/2.
    """
    n_eff = n_conversations * applicable_share / design_effect
    if n_eff <= 0:
        return 1.0

    def ok(p: float) -> bool:
        lo, hi = wilson(p * n_eff, n_eff, z)
        return lo > 0 and (hi - lo) / 2 <= relative_half_width * p

    lo, hi = 1e-12, 1.0
    if not ok(hi - 1e-9):
        return 1.0
    for _ in range(200):  # bisection on a monotone criterion, in log space
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def zero_count_upper_bound(
    n_conversations: int, applicable_share: float = 1.0, design_effect: float = 1.0, z: float = Z95
) -> float:
    """Upper 95% bound on a rate when no applicable conversation was flagged (about 3.84/n)."""
    n_eff = n_conversations * applicable_share / design_effect
    return wilson(0, n_eff, z)[1]


def neyman_allocation(
    sizes: dict[str, float], rates: dict[str, float], n: int, min_per_stratum: int = 2
) -> dict[str, int]:
    """n_h proportional to N_h * sqrt(p_h (1 - p_h)), at least min_per_stratum, summing to n."""
    if n < min_per_stratum * len(sizes):
        raise ValueError("sample too small for the minimum per stratum")
    score = {h: sizes[h] * math.sqrt(max(rates[h] * (1 - rates[h]), 1e-12)) for h in sizes}
    free = n - min_per_stratum * len(sizes)
    total = sum(score.values())
    raw = {h: min_per_stratum + free * score[h] / total for h in sizes}
    alloc = {h: int(r) for h, r in raw.items()}
    for h in sorted(sizes, key=lambda h: raw[h] - alloc[h], reverse=True)[: n - sum(alloc.values())]:
        alloc[h] += 1
    return alloc


MAX_CONVERSATIONS = 100_000_000  # beyond this a rate is called undecidable by sampling


def conversations_to_decide(
    rate: float,
    max_rate: float,
    n_sampled: int,
    n_applicable: int,
    n_eff: float | None = None,
    z: float = Z95,
) -> int | None:
    """Further sampled conversations after which the interval at the observed rate is expected to
    lie wholly below max_rate (rate < max_rate) or above it (rate > max_rate): the applicable share
    and the design effect (n_applicable / n_eff) are taken as observed. 0 when it already does;
    None when nothing applied yet or the rate sits at the threshold (no sample size decides it)."""
    if n_sampled <= 0 or n_applicable <= 0 or not 0 < max_rate < 1:
        return None
    share = n_applicable / n_sampled
    deff = max(n_applicable / n_eff, 1.0) if n_eff else 1.0

    def decided(n: int) -> bool:
        lo, hi = wilson(rate * n * share / deff, n * share / deff, z)
        return hi < max_rate if rate < max_rate else lo > max_rate

    if rate == max_rate or not decided(MAX_CONVERSATIONS):
        return None
    return max(0, _smallest_n(decided, MAX_CONVERSATIONS) - n_sampled)
