"""Rates by stratum (topic, surface, chat vs agent) with intervals, for the report.

A level of a dimension (e.g. topic = billing) is a domain of the sample: the same design-based
ratio estimator as the gate (stats.domain_ratio over the sample's strata, Wilson interval at the
effective sample size), restricted to the applicable conversations of that level.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from deploysim.estimation import stats


@dataclass(frozen=True)
class Cell:
    dimension: str  # topic, surface or kind
    level: str  # e.g. billing, web_chat, agent
    behaviour: str
    n_applicable: int
    n_flagged: int
    rate: float
    ci_low: float
    ci_high: float
    baseline_flagged: int
    baseline_rate: float
    baseline_ci_low: float
    baseline_ci_high: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def breakdown(
    sample: list[dict],
    grades: list[dict],
    levels: dict[str, dict[str, str]],
    primary: dict[str, str] | None = None,
    z: float = stats.Z95,
) -> list[Cell]:
    """Candidate and baseline rates per behaviour and level of each dimension.

    sample: sample rows (conversation_id, stratum, inclusion_prob, ...); grades: grade rows of both
    systems; levels: dimension -> conversation_id -> level. A conversation counts for a behaviour when
    both systems were graded and either found it applicable (as in stats.estimate). Levels with no
    applicable conversation are left out.
    """
    units = stats.design_units(sample)
    out: list[Cell] = []
    for beh, g in sorted(stats._grades_by(grades, primary).items()):
        for dim, of in levels.items():
            for level in sorted({of[cid] for cid in units if cid in of}):
                cand: dict[str, stats.StratumSums] = defaultdict(stats.StratumSums)
                base: dict[str, stats.StratumSums] = defaultdict(stats.StratumSums)
                n_app = k = kb = 0
                for cid, (h, w, f) in units.items():  # every sampled unit: outside the level, outside the domain
                    c, b = g.get((cid, "candidate")), g.get((cid, "baseline"))
                    a = bool(c and b and (c[0] or b[0])) and of.get(cid) == level
                    yc = float(a and c is not None and c[1])
                    yb = float(a and b is not None and b[1])
                    for acc, y in ((cand, yc), (base, yb)):
                        acc[h].f = f
                        acc[h].add(w, a, y)
                    n_app, k, kb = n_app + a, k + int(yc), kb + int(yb)
                if n_app == 0:
                    continue
                p, q = stats.domain_ratio(cand.values()), stats.domain_ratio(base.values())
                lo, hi = stats.rate_interval(p, z)
                blo, bhi = stats.rate_interval(q, z)
                out.append(Cell(dim, level, beh, n_app, k, p.rate, lo, hi, kb, q.rate, blo, bhi))
    return out
