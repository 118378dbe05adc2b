"""Stratified sampling with recorded inclusion probabilities."""
from __future__ import annotations

import hashlib
from collections import defaultdict

from deploysim.schemas import SampleRow


def stratum_of(topic: str, kind: str) -> str:
    return f"{topic}/{kind}"


def allocate(sizes: dict[str, int], n: int, min_per_stratum: int = 2) -> dict[str, int]:
    """Proportional allocation (largest remainder), at least min_per_stratum where possible."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    raw = {h: n * N / total for h, N in sizes.items()}
    alloc = {h: min(sizes[h], max(min_per_stratum, int(r))) for h, r in raw.items()}
    while sum(alloc.values()) > n:  # minimums pushed us over: take back where we gave most beyond the share
        h = max((h for h in alloc if alloc[h] > min_per_stratum), key=lambda h: alloc[h] - raw[h])
        alloc[h] -= 1
    rest = sorted(sizes, key=lambda h: raw[h] - int(raw[h]), reverse=True)
    i = 0
    while sum(alloc.values()) < n and i < 10 * len(rest):
        h = rest[i % len(rest)]
        if alloc[h] < sizes[h]:
            alloc[h] += 1
        i += 1
    return alloc


def stratified_sample(units: list[tuple[str, str]], n: int, seed: int = 0, min_per_stratum: int = 2) -> list[SampleRow]:
    """Sample n of (conversation_id, stratum) units without replacement within strata.

    Selection within a stratum is by a seeded hash of the id, so it does not depend on
    input order and candidate and baseline always see the same conversations.
    """
    if n <= 0:
        raise ValueError("sample size must be positive")
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for cid, stratum in units:
        by_stratum[stratum].append(cid)
    alloc = allocate({h: len(v) for h, v in by_stratum.items()}, n, min_per_stratum)
    rows: list[SampleRow] = []
    for h in sorted(by_stratum):
        ids = sorted(by_stratum[h], key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
        N, k = len(ids), alloc[h]
        rows += [SampleRow(conversation_id=c, stratum=h, inclusion_prob=k / N, population=N, sampled=k) for c in ids[:k]]
    return rows
