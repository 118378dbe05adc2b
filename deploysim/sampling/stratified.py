"""Stratified sampling with recorded inclusion probabilities.

When the strata are too many for min_per_stratum units each, the small ones are pooled before
allocation (per kind, "(other)/chat", then into one "(other)" pool). Every stratum left is
sampled (never 0 units) and every unit's inclusion_prob is the true k/N of the stratum it was
drawn from, so the weights 1/pi add up to the population and weighted estimates stay
unbiased, whatever the number of strata.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from deploysim.schemas import SampleRow

POOLED = "(other)"  # topic of a pool of small strata


def stratum_of(topic: str, kind: str) -> str:
    return f"{topic}/{kind}"


def allocate(sizes: dict[str, int], n: int, min_per_stratum: int = 2) -> dict[str, int]:
    """Proportional allocation (largest remainder) summing to min(n, population), with at least
    min_per_stratum (or the whole stratum) per stratum when n allows it; when it does not,
    plain proportional shares, where some strata get 0 (pool_strata avoids that)."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    raw = {h: n * N / total for h, N in sizes.items()}
    floor = {h: min(sizes[h], min_per_stratum) for h in sizes}
    if sum(floor.values()) > n:
        floor = dict.fromkeys(sizes, 0)
    alloc = {h: min(sizes[h], max(floor[h], int(r))) for h, r in raw.items()}
    excess = sum(alloc.values()) - n
    over = sorted(sizes, key=lambda h: (raw[h] - alloc[h], h))  # most given beyond the share first
    while excess > 0:  # minimums pushed us over: take back, one unit a round
        for h in over:
            if excess > 0 and alloc[h] > floor[h]:
                alloc[h] -= 1
                excess -= 1
    short = n - sum(alloc.values())
    under = sorted(sizes, key=lambda h: (alloc[h] - raw[h], h))  # largest remainder first
    while short > 0:
        for h in under:
            if short > 0 and alloc[h] < sizes[h]:
                alloc[h] += 1
                short -= 1
    return alloc


def _kind(stratum: str) -> str:
    return stratum.rsplit("/", 1)[1] if "/" in stratum else ""


def pool_strata(sizes: dict[str, int], n: int, min_per_stratum: int = 2) -> dict[str, str]:
    """stratum -> the stratum its units are drawn in. When every stratum can have
    min_per_stratum units, itself; otherwise strata whose proportional share of n is below the
    minimum are pooled per kind, pools still below it into one pool, and then the smallest
    strata into that pool until every stratum left can have its minimum."""
    total = sum(sizes.values())
    least = min(min_per_stratum, n)
    if n >= total or len(sizes) * least <= n:
        return {h: h for h in sizes}
    need = least * total / n  # a stratum smaller than this gets less than `least` at its share
    group = {h: (h if N >= need else stratum_of(POOLED, _kind(h))) for h, N in sizes.items()}

    def group_sizes() -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for h, g in group.items():
            out[g] += sizes[h]
        return out

    pools = {g for g in group.values() if g not in sizes}
    if any(N < need for g, N in group_sizes().items() if g in pools):
        group = {h: (POOLED if g in pools else g) for h, g in group.items()}
    gs = group_sizes()
    while len(gs) > 1 and least * len(gs) > n:
        smallest = min((g for g in gs if g != POOLED), key=lambda g: (gs[g], g))
        group = {h: (POOLED if g == smallest or g in pools else g) for h, g in group.items()}
        gs = group_sizes()
    members: dict[str, list[str]] = defaultdict(list)
    for h, g in group.items():
        members[g].append(h)
    return {h: (h if len(members[g]) == 1 else g) for h, g in group.items()}  # a pool of one keeps its name


def stratified_sample(units: list[tuple[str, str]], n: int, seed: int = 0, min_per_stratum: int = 2) -> list[SampleRow]:
    """Sample n of (conversation_id, stratum) units without replacement within strata.

    Strata too small for their minimum are pooled first (pool_strata); a row's stratum is the
    one it was drawn from. Selection within a stratum is by a seeded hash of the id, so it does
    not depend on input order and candidate and baseline always see the same conversations.
    """
    if n <= 0:
        raise ValueError("sample size must be positive")
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for cid, stratum in units:
        by_stratum[stratum].append(cid)
    group = pool_strata({h: len(v) for h, v in by_stratum.items()}, n, min_per_stratum)
    by_group: dict[str, list[str]] = defaultdict(list)
    for h, ids in by_stratum.items():
        by_group[group[h]].extend(ids)
    alloc = allocate({g: len(v) for g, v in by_group.items()}, n, min_per_stratum)
    rows: list[SampleRow] = []
    for g in sorted(by_group):
        ids = sorted(by_group[g], key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
        N, k = len(ids), alloc[g]
        rows += [
            SampleRow(conversation_id=c, stratum=g, inclusion_prob=k / N, population=N, sampled=k) for c in ids[:k]
        ]
    return rows
