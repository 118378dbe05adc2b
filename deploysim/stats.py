"""Prevalence estimates under a stratified sample, with intervals that stay honest for rare behaviours.

Design: stratified simple random sampling without replacement; weights w_i = 1/inclusion_prob.
Per behaviour, over the applicable conversations (a domain):
  rate  = sum(w a y) / sum(w a)                        (ratio / Hajek estimator)
  var   = Taylor linearisation: z_i = a_i (y_i - rate) / sum(w a),
          var = sum_h (1 - n_h/N_h) n_h/(n_h-1) sum_i (w_i z_i - mean_h)^2
  CI    = Wilson score interval at the Kish effective sample size n_eff = p(1-p)/var
          (capped at the applicable count, so the design effect is never below 1).
Paired difference (candidate - baseline, same conversations): same estimator on d_i = y_cand - y_base,
normal interval; with no discordant pairs it falls back to +/- the Wilson upper bound of 0 discordant
pairs (|diff| can't exceed the discordance rate), so it is never [0, 0].
Conversations lacking a candidate or baseline grade for a behaviour (replay failed) leave the domain
of that behaviour for both systems; they still count as sampled units (domain estimation).
"""
from __future__ import annotations

import math
from collections import defaultdict
from statistics import NormalDist

from deploysim.schemas import Estimate

Z95 = NormalDist().inv_cdf(0.975)


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (k, n may be effective, non-integer)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(k / n, 0.0), 1.0)
    z2 = z * z
    den = 1 + z2 / n
    mid = (p + z2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    lo, hi = max(0.0, mid - half), min(1.0, mid + half)
    if k <= 0:
        lo = 0.0
    if k >= n:
        hi = 1.0
    return lo, hi


def _ratio(units: list[tuple[str, float, float, float, float]]) -> tuple[float, float]:
    """Ratio estimate sum(w a y)/sum(w a) and its linearised stratified variance.

    units: (stratum, weight, fpc, a, y) for every sampled unit (a=0 outside the domain).
    """
    den = sum(w * a for _, w, _, a, _ in units)
    if den <= 0:
        return 0.0, 0.0
    r = sum(w * a * y for _, w, _, a, y in units) / den
    by: dict[str, list[float]] = defaultdict(list)
    fpc: dict[str, float] = {}
    for h, w, f, a, y in units:
        by[h].append(w * a * (y - r) / den)
        fpc[h] = f
    var = 0.0
    for h, u in by.items():
        n = len(u)
        if n < 2:
            continue  # a single-unit stratum carries no variance information
        m = sum(u) / n
        var += (1 - fpc[h]) * n / (n - 1) * sum((x - m) ** 2 for x in u)
    return r, max(var, 0.0)


def _rate_ci(p: float, var: float, n_app: int) -> tuple[float, float]:
    n_eff = p * (1 - p) / var if var > 0 else n_app
    n_eff = min(n_eff, n_app)  # design effect >= 1
    return wilson(p * n_eff, n_eff)


def _grades_by(grades: list[dict]) -> dict[str, dict[tuple[str, str], tuple[bool, bool]]]:
    """behaviour -> (conversation_id, system) -> (applicable, flagged), OR-ed over graders."""
    out: dict[str, dict[tuple[str, str], tuple[bool, bool]]] = defaultdict(dict)
    for g in grades:
        key = (g["conversation_id"], g["system"])
        app = bool(g["applicable"])
        flag = app and bool(g["flagged"])
        a0, f0 = out[g["behaviour"]].get(key, (False, False))
        out[g["behaviour"]][key] = (a0 or app, f0 or flag)
    return out


def estimate(candidate: str, sample: list[dict], grades: list[dict]) -> list[Estimate]:
    units: dict[str, tuple[str, float, float]] = {}  # conversation_id -> (stratum, weight, fpc)
    for s in sample:
        pi = float(s["inclusion_prob"])
        N, n = s.get("population") or 0, s.get("sampled") or 0
        f = n / N if N else pi
        units[s["conversation_id"]] = (s["stratum"], 1.0 / pi, min(max(f, 0.0), 1.0))
    n_sampled = len(units)

    out = []
    for beh, g in sorted(_grades_by(grades).items()):
        cand, base, diff = [], [], []
        n_app = n_flag = b_flag = n_disc = 0
        for cid, (h, w, f) in units.items():
            c, b = g.get((cid, "candidate")), g.get((cid, "baseline"))
            a = 1.0 if (c and b and (c[0] or b[0])) else 0.0  # paired: both graded, applicable
            yc = float(a and c[1])
            yb = float(a and b[1])
            cand.append((h, w, f, a, yc))
            base.append((h, w, f, a, yb))
            diff.append((h, w, f, a, yc - yb))
            if a:
                n_app += 1
                n_flag += int(yc)
                b_flag += int(yb)
                n_disc += int(yc != yb)

        if n_app == 0:
            out.append(Estimate(
                candidate=candidate, behaviour=beh, n_sampled=n_sampled, n_applicable=0, n_flagged=0,
                rate=0.0, ci_low=0.0, ci_high=1.0, baseline_rate=0.0, baseline_ci_low=0.0,
                baseline_ci_high=1.0, baseline_flagged=0, diff=0.0, diff_ci_low=-1.0, diff_ci_high=1.0,
            ))
            continue

        p, vp = _ratio(cand)
        q, vq = _ratio(base)
        d, vd = _ratio(diff)
        lo, hi = _rate_ci(p, vp, n_app)
        blo, bhi = _rate_ci(q, vq, n_app)
        if n_disc == 0 or vd <= 0:
            half = wilson(0, n_app)[1]  # bound on the discordance rate
        else:
            half = Z95 * math.sqrt(vd)
        out.append(Estimate(
            candidate=candidate, behaviour=beh, n_sampled=n_sampled, n_applicable=n_app,
            n_flagged=n_flag, rate=p, ci_low=lo, ci_high=hi, baseline_rate=q,
            baseline_ci_low=blo, baseline_ci_high=bhi, baseline_flagged=b_flag, diff=d,
            diff_ci_low=max(-1.0, d - half), diff_ci_high=min(1.0, d + half),
        ))
    return out
