"""Prevalence estimates under a stratified sample, with intervals that stay honest for rare behaviours.

Design: stratified sampling without replacement; weights w_i = 1/inclusion_prob (they may differ
within a stratum, e.g. under importance sampling).

Per behaviour, over the applicable conversations (a domain):
  rate  = sum(w a y) / sum(w a)                        (ratio / Hajek estimator)
  var   = Taylor linearisation: z_i = a_i (y_i - rate) / sum(w a),
          var = sum_h (1 - f_h) n_h/(n_h-1) sum_i (w_i z_i - mean_h)^2
          with f_h = 0 by default: a forecast is about future traffic, not the logged conversations
          (estimate(..., finite_population=True) uses f_h = n_h/N_h)
  CI    = Wilson score interval at the effective sample size n_eff = p(1-p)/var (Korn & Graubard).
          When nothing (or everything) was
          flagged the variance is 0 and n_eff is Kish's weight-based size (sum w)^2 / sum w^2, so a
          zero count still gives a useful upper bound, about 3.84/n_eff.
The estimator only needs, per stratum, seven sums (`StratumSums`); `estimate` builds them from unit
rows and the validation study builds them from simulated counts, so both run the same code.

Paired difference (candidate - baseline, same conversations): same estimator on d_i = y_cand - y_base,
normal interval; with no discordant pairs it falls back to +/- the Wilson upper bound of 0 discordant
pairs (|diff| can't exceed the discordance rate), so it is never [0, 0].
Conversations lacking a candidate or baseline grade for a behaviour (replay failed) leave the domain
of that behaviour for both systems; they still count as sampled units (domain estimation).

Also here: prediction-powered inference (PPI++) for correcting a grader with human labels (a mean,
and a domain ratio whose domain the humans judge too), Holm's
step-down procedure for the gate's family of tests, and one-sided p-values for the gate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Iterable, Sequence

from deploysim.schemas import Estimate

Z95 = NormalDist().inv_cdf(0.975)
_N = NormalDist()


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


# ---------------------------------------------------------------------------- the design-based core


@dataclass
class StratumSums:
    """Sufficient statistics of one stratum for a domain ratio (a = in domain, y = outcome).

    n: sampled units in the stratum (in and out of the domain); f: sampling fraction n_h/N_h.
    """

    n: int = 0
    f: float = 0.0
    m: int = 0  # units in the domain
    k: float = 0.0  # units in the domain with y != 0 (flagged), unweighted
    sw: float = 0.0  # sum w a
    swy: float = 0.0  # sum w a y
    sw2: float = 0.0  # sum w^2 a
    sw2y: float = 0.0  # sum w^2 a y
    sw2y2: float = 0.0  # sum w^2 a y^2

    def add(self, w: float, a: bool, y: float) -> None:
        self.n += 1
        if a:
            self.m += 1
            self.k += y != 0
            self.sw += w
            self.swy += w * y
            self.sw2 += w * w
            self.sw2y += w * w * y
            self.sw2y2 += w * w * y * y

    @classmethod
    def from_counts(cls, n: int, f: float, w: float, m: int, k: float, k2: float | None = None) -> StratumSums:
        """Equal weights w within the stratum: m units in the domain, sum y = k, sum y^2 = k2 (= k for 0/1)."""
        k2 = k if k2 is None else k2
        return cls(n=n, f=f, m=m, k=k, sw=w * m, swy=w * k, sw2=w * w * m, sw2y=w * w * k, sw2y2=w * w * k2)


@dataclass(frozen=True)
class RatioEstimate:
    rate: float
    var: float
    n_app: int  # units in the domain
    n_kish: float  # Kish effective size of the domain's weights

    @property
    def se(self) -> float:
        return math.sqrt(self.var)

    @property
    def n_eff(self) -> float:
        """Effective sample size for the interval: p(1-p)/var (Korn-Graubard), Kish's when var is 0."""
        if self.n_app == 0:
            return 0.0
        p = self.rate
        return p * (1 - p) / self.var if self.var > 0 and 0 < p < 1 else self.n_kish


SHRINK_FLAGS = 2.0
SHRINK_LABELS = 4.0  # ppi_ratio: labelled positives behind the labels-only variance it shrinks toward


def domain_ratio(strata: Iterable[StratumSums], binary: bool = True) -> RatioEstimate:
    """Hajek estimate sum(w a y)/sum(w a) and its linearised stratified variance.

    binary: y is 0/1 (a rate). Then the variance is shrunk toward the variance the same weights
    would give if every stratum had the overall rate, r(1-r)/n_kish, with the weight of
    SHRINK_FLAGS flagged units against the k flagged units observed:
        var = (k var_hat + k0 var_kish) / (k + k0).
    With a handful of flags the plug-in variance misses strata that happened to show none, and
    intervals under unequal weights under-cover; with many flags var_hat dominates, so a design
    that really is more precise than its weights (a rate concentrated in an oversampled stratum)
    keeps its narrower interval. For a difference (y in -1, 0, 1) pass binary=False.
    """
    strata = list(strata)
    den = sum(s.sw for s in strata)
    n_app = sum(s.m for s in strata)
    if den <= 0:
        return RatioEstimate(0.0, 0.0, 0, 0.0)
    r = sum(s.swy for s in strata) / den
    var = 0.0
    for s in strata:
        if s.n < 2:
            continue  # a single-unit stratum carries no variance information
        su = (s.swy - r * s.sw) / den
        su2 = (s.sw2y2 - 2 * r * s.sw2y + r * r * s.sw2) / (den * den)
        ss = max(su2 - su * su / s.n, 0.0)
        var += (1 - min(max(s.f, 0.0), 1.0)) * s.n / (s.n - 1) * ss
    sw2 = sum(s.sw2 for s in strata)
    n_kish = den * den / sw2 if sw2 > 0 else 0.0
    if binary and n_kish > 0 and len(strata) > 1:
        k = sum(s.k for s in strata)
        var = (k * var + SHRINK_FLAGS * r * (1 - r) / n_kish) / (k + SHRINK_FLAGS)
    return RatioEstimate(r, max(var, 0.0), n_app, n_kish)


def rate_interval(est: RatioEstimate, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval at the effective sample size (valid for rare rates; [0, ~3.84/n] at 0)."""
    if est.n_app == 0:
        return 0.0, 1.0
    n_eff = est.n_eff
    return wilson(est.rate * n_eff, n_eff, z)


def diff_interval(est: RatioEstimate, n_disc: int, z: float = Z95) -> tuple[float, float, float]:
    """Normal interval for a paired difference; (low, high, se). Never degenerate at zero discordance."""
    if est.n_app == 0:
        return -1.0, 1.0, 1.0
    if n_disc == 0 or est.var <= 0:
        half = wilson(0, est.n_app, z)[1]  # bound on the discordance rate
        se = half / z
    else:
        se = est.se
        half = z * se
    return max(-1.0, est.rate - half), min(1.0, est.rate + half), se


# ---------------------------------------------------------------------------- the pipeline's estimate


def _grades_by(
    grades: list[dict], primary: dict[str, str] | None = None
) -> dict[str, dict[tuple[str, str], tuple[bool, bool]]]:
    """behaviour -> (conversation_id, system) -> (applicable, flagged), OR-ed over graders
    (only the behaviour's primary grader when `primary` names one)."""
    out: dict[str, dict[tuple[str, str], tuple[bool, bool]]] = defaultdict(dict)
    for g in grades:
        if primary and g["behaviour"] in primary and g["grader"] != primary[g["behaviour"]]:
            continue
        key = (g["conversation_id"], g["system"])
        app = bool(g["applicable"])
        flag = app and bool(g["flagged"])
        a0, f0 = out[g["behaviour"]].get(key, (False, False))
        out[g["behaviour"]][key] = (a0 or app, f0 or flag)
    return out


def design_units(sample: list[dict], finite_population: bool = False) -> dict[str, tuple[str, float, float]]:
    """conversation_id -> (stratum, weight, sampling fraction) from sample rows.

    A forecast is about future traffic like the logged one (a superpopulation), not about the
    logged conversations themselves, so by default no finite-population correction (f = 0).
    """
    units: dict[str, tuple[str, float, float]] = {}
    for s in sample:
        pi = float(s["inclusion_prob"])
        N, n = s.get("population") or 0, s.get("sampled") or 0
        f = (n / N if N else pi) if finite_population else 0.0
        units[s["conversation_id"]] = (s["stratum"], 1.0 / pi, min(max(f, 0.0), 1.0))
    return units


def estimate(
    candidate: str,
    sample: list[dict],
    grades: list[dict],
    labels: list[dict] | None = None,
    finite_population: bool = False,
    primary: dict[str, str] | None = None,
    look: int = 0,
) -> list[Estimate]:
    """Per behaviour: candidate and baseline rates with 95% intervals and their paired difference.

    labels (optional): human labels {conversation_id, system, behaviour, label} with label True
    (present), False (absent) or None (the behaviour does not apply). Where a behaviour has two or
    more labelled candidate turns, a PPI++ ratio estimate (`ppi_ratio`) over every sampled unit
    corrects both the grader's domain and its verdict; it is reported beside the uncorrected rate.
    A unit counts as labelled for a behaviour only when a row names it (1, 0 or na).
    primary (optional): behaviour -> grader id whose verdicts count (the taxonomy's first grader);
    without it a turn is flagged when any of its behaviour's graders flagged it.
    look: 0 for a fixed-sample run (95% intervals); r >= 1 for round r of a sample grown until the gate
    decides, where the intervals are wider (`look_alpha`) so that looking after every round keeps the
    error rates.
    """
    z = look_z(look)
    seq = {"look": look, "alpha": look_alpha(look)}
    units = design_units(sample, finite_population)
    n_sampled = len(units)
    human = _labels_by(labels or [])

    out = []
    for beh, g in sorted(_grades_by(grades, primary).items()):
        cand: dict[str, StratumSums] = defaultdict(StratumSums)
        base: dict[str, StratumSums] = defaultdict(StratumSums)
        diff: dict[str, StratumSums] = defaultdict(StratumSums)
        n_app = n_flag = b_flag = n_disc = 0
        for cid, (h, w, f) in units.items():
            c, b = g.get((cid, "candidate")), g.get((cid, "baseline"))
            a = bool(c and b and (c[0] or b[0]))  # paired: both graded, applicable
            yc = float(a and c is not None and c[1])
            yb = float(a and b is not None and b[1])
            for acc, y in ((cand, yc), (base, yb), (diff, yc - yb)):
                acc[h].f = f
                acc[h].add(w, a, y)
            if a:
                n_app += 1
                n_flag += int(yc)
                b_flag += int(yb)
                n_disc += int(yc != yb)
        extra = _corrected(beh, g, units, human)

        if n_app == 0:
            out.append(
                Estimate(
                    candidate=candidate,
                    behaviour=beh,
                    n_sampled=n_sampled,
                    n_applicable=0,
                    n_flagged=0,
                    rate=0.0,
                    ci_low=0.0,
                    ci_high=1.0,
                    baseline_rate=0.0,
                    baseline_ci_low=0.0,
                    baseline_ci_high=1.0,
                    baseline_flagged=0,
                    diff=0.0,
                    diff_ci_low=-1.0,
                    diff_ci_high=1.0,
                    diff_se=1.0,
                    **seq,
                    **extra,
                )
            )
            continue

        p = domain_ratio(cand.values())
        q = domain_ratio(base.values())
        d = domain_ratio(diff.values(), binary=False)
        lo, hi = rate_interval(p, z)
        blo, bhi = rate_interval(q, z)
        dlo, dhi, dse = diff_interval(d, n_disc, z)
        out.append(
            Estimate(
                candidate=candidate,
                behaviour=beh,
                n_sampled=n_sampled,
                n_applicable=n_app,
                n_flagged=n_flag,
                rate=p.rate,
                ci_low=lo,
                ci_high=hi,
                baseline_rate=q.rate,
                baseline_ci_low=blo,
                baseline_ci_high=bhi,
                baseline_flagged=b_flag,
                diff=d.rate,
                diff_ci_low=dlo,
                diff_ci_high=dhi,
                diff_se=dse,
                n_eff=p.n_eff,
                **seq,
                **extra,
            )
        )
    return out


def _labels_by(labels: list[dict]) -> dict[tuple[str, str, str], bool | None]:
    """(behaviour, conversation_id, system) -> True (present), False (absent) or None (does not apply)."""
    out: dict[tuple[str, str, str], bool | None] = {}
    for r in labels:
        v = r.get("label")
        out[(r["behaviour"], r["conversation_id"], r.get("system") or "candidate")] = None if v is None else bool(v)
    return out


def _corrected(
    beh: str,
    g: dict[tuple[str, str], tuple[bool, bool]],
    units: dict[str, tuple[str, float, float]],
    human: dict[tuple[str, str, str], bool | None],
) -> dict:
    """The candidate's PPI++ ratio estimate over every sampled unit with a candidate turn graded or
    labelled: the grader's (applies, flagged) against the humans' (applies, present); {} with fewer
    than two labelled units."""
    sums = RatioSums()
    n_lab = 0
    for cid, (_, w, _) in units.items():
        c = g.get((cid, "candidate"))
        key = (beh, cid, "candidate")
        if c is None and key not in human:
            continue  # no candidate turn (replay failed, or no verdict) and no label
        app, flag = c or (False, False)
        labelled = key in human
        n_lab += labelled
        sums.add(w, app, flag, human.get(key), labelled=labelled)
    if n_lab < 2:
        return {}
    r = ppi_ratio(sums)
    return dict(ppi_rate=r.rate, ppi_ci_low=r.ci_low, ppi_ci_high=r.ci_high, n_labelled=n_lab)


# ---------------------------------------------------------------------------- PPI++


@dataclass(frozen=True)
class PPIResult:
    rate: float
    ci_low: float
    ci_high: float
    se: float
    lam: float  # power-tuning parameter (0: labels only; 1: classic PPI)
    naive: float  # the uncorrected estimate from predictions alone
    lam_den: float = 0.0  # a ratio's denominator lambda (ppi_ratio)


def _wmean(x: Sequence[float], w: Sequence[float]) -> float:
    sw = sum(w)
    return sum(a * b for a, b in zip(x, w)) / sw if sw > 0 else 0.0


def _wcov(x: Sequence[float], y: Sequence[float], w: Sequence[float]) -> float:
    mx, my, sw = _wmean(x, w), _wmean(y, w), sum(w)
    return sum(wi * (a - mx) * (b - my) for a, b, wi in zip(x, y, w)) / sw if sw > 0 else 0.0


def _kish(w: Sequence[float]) -> float:
    s2 = sum(x * x for x in w)
    return sum(w) ** 2 / s2 if s2 > 0 else 0.0


def ppi_mean(
    pred_unlabelled: Sequence[float],
    pred_labelled: Sequence[float],
    labels: Sequence[float],
    w_unlabelled: Sequence[float] | None = None,
    w_labelled: Sequence[float] | None = None,
    z: float = Z95,
) -> PPIResult:
    """Prediction-powered mean (PPI++, Angelopoulos et al. 2023) with a power-tuned lambda.

    theta = lambda * mean_U(f) + mean_L(y - lambda f), lambda = Cov_L(y, f) / ((1 + n/N) Var(f)),
    clipped to [0, 1]; var = Var_L(y - lambda f)/n + lambda^2 Var_U(f)/N. Weighted means are Hajek
    means under design weights, with Kish effective sizes in the variances. The interval is normal,
    clipped to [0, 1].
    """
    n, N = len(labels), len(pred_unlabelled)
    if n < 2:
        raise ValueError("PPI needs at least two labelled units")
    wl = list(w_labelled) if w_labelled is not None else [1.0] * n
    wu = list(w_unlabelled) if w_unlabelled is not None else [1.0] * N
    fl, y = list(pred_labelled), list(labels)
    fu = list(pred_unlabelled)
    n_l, n_u = _kish(wl), _kish(wu)
    all_f, all_w = fu + fl, wu + wl
    var_f = _wcov(all_f, all_f, all_w)
    if N == 0 or var_f <= 0:
        lam = 0.0
    else:
        lam = _wcov(y, fl, wl) / ((1 + n_l / n_u) * var_f)
        lam = min(max(lam, 0.0), 1.0)
    mu_u = _wmean(fu, wu) if N else 0.0
    resid = [a - lam * b for a, b in zip(y, fl)]
    theta = lam * mu_u + _wmean(resid, wl)
    var = _wcov(resid, resid, wl) * n_l / max(n_l - 1, 1) / n_l
    if N and lam > 0:
        var += lam * lam * _wcov(fu, fu, wu) * n_u / max(n_u - 1, 1) / n_u
    se = math.sqrt(max(var, 0.0))
    if se == 0:  # e.g. every label 0 and perfect agreement: fall back to Wilson on the labels
        lo, hi = wilson(sum(y) / n * n_l, n_l, z)
    else:
        lo, hi = theta - z * se, theta + z * se
    return PPIResult(
        rate=min(max(theta, 0.0), 1.0),
        ci_low=max(0.0, lo),
        ci_high=min(1.0, hi),
        se=se,
        lam=lam,
        naive=_wmean(fu + fl, wu + wl),
    )


# ---------------------------------------------------------------------------- PPI++ for a domain ratio
# theta = E[w A Y] / E[w A]: A = the human says the behaviour applies, Y = present. The graders give
# A_hat (applies) and F_hat = A_hat * Y_hat (applies and flagged) on every unit; humans label a random
# subset. Numerator and denominator are prediction-powered Hajek means, each power-tuned; the ratio's
# variance comes from the delta method with their covariance.

_L_VARS = ("a", "ay", "a_hat", "f_hat")  # labelled units: human domain, human present, the graders' two
_U_VARS = ("a_hat", "f_hat")  # unlabelled units: the graders' only


class _Moments:
    """Weighted sums of one group of units: n, sum w x_j and sum w^2 x_j x_k (x_0 = 1)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = ("one", *names)
        self.n = 0
        k = len(self.names)
        self.s1 = [0.0] * k
        self.s2 = [[0.0] * k for _ in range(k)]

    def add(self, w: float, values: Sequence[float], count: int = 1) -> None:
        x = (1.0, *values)
        self.n += count
        for j, xj in enumerate(x):
            self.s1[j] += count * w * xj
            for k, xk in enumerate(x):
                self.s2[j][k] += count * w * w * xj * xk

    def total(self, name: str) -> float:
        return self.s1[self.names.index(name)]

    def mean(self, name: str) -> float:
        return self.total(name) / self.s1[0] if self.s1[0] > 0 else 0.0

    def cov(self, x: dict[str, float], y: dict[str, float]) -> float:
        """Linearised covariance of the Hajek means of two linear combinations of the variables
        (x, y: name -> coefficient): n/(n-1) sum w^2 (x - mean x)(y - mean y) / (sum w)^2."""
        if self.n < 2 or self.s1[0] <= 0:
            return 0.0
        cx = [0.0] * len(self.names)
        cy = [0.0] * len(self.names)
        for name, c in x.items():
            j = self.names.index(name)
            cx[j] += c
            cx[0] -= c * self.mean(name)
        for name, c in y.items():
            j = self.names.index(name)
            cy[j] += c
            cy[0] -= c * self.mean(name)
        s = sum(cx[j] * cy[k] * self.s2[j][k] for j in range(len(cx)) for k in range(len(cy)))
        return self.n / (self.n - 1) * s / (self.s1[0] ** 2)

    @property
    def kish(self) -> float:
        return self.s1[0] ** 2 / self.s2[0][0] if self.s2[0][0] > 0 else 0.0


@dataclass
class RatioSums:
    """What PPI++ for a domain ratio needs from the sample: moments of the labelled and unlabelled units."""

    labelled: _Moments = field(default_factory=lambda: _Moments(_L_VARS))
    unlabelled: _Moments = field(default_factory=lambda: _Moments(_U_VARS))
    in_domain: _Moments = field(default_factory=lambda: _Moments(()))  # labelled units humans put in the domain
    positives: int = 0  # labelled units with the behaviour present

    def add(
        self,
        w: float,
        applies_hat: bool,
        flagged_hat: bool,
        label: bool | None = None,
        labelled: bool = False,
        count: int = 1,
    ) -> None:
        """One unit (or `count` equal ones) of weight w; label: True present, False absent, None not
        applicable (when labelled) or unknown (when not labelled)."""
        ah = float(bool(applies_hat))
        fh = float(bool(applies_hat) and bool(flagged_hat))
        if not labelled:
            self.unlabelled.add(w, (ah, fh), count)
            return
        a = float(label is not None)
        ay = float(bool(label))
        self.labelled.add(w, (a, ay, ah, fh), count)
        if a:
            self.in_domain.add(w, (), count)
            self.positives += count * int(ay)


def _tuned(sums: RatioSums, target: str, pred: str) -> float:
    """Power-tuning lambda of one prediction-powered mean: minimises Var_L(target - lam pred) + lam^2
    Var_U(pred), i.e. lam = Cov_L(target, pred) / (Var_L(pred) + Var_U(pred)), clipped to [0, 1]."""
    L, U = sums.labelled, sums.unlabelled
    if U.n < 2:
        return 0.0
    den = L.cov({pred: 1}, {pred: 1}) + U.cov({pred: 1}, {pred: 1})
    if den <= 0:
        return 0.0
    return min(max(L.cov({target: 1}, {pred: 1}) / den, 0.0), 1.0)


def ppi_ratio(sums: RatioSums, z: float = Z95) -> PPIResult:
    """PPI++ estimate of a domain ratio (behaviour present among units where it applies) with a 95%
    interval, correcting both the graders' verdict and their domain.

    numerator   N = lam_n mean_U(F_hat) + mean_L(A Y - lam_n F_hat)
    denominator D = lam_d mean_U(A_hat) + mean_L(A - lam_d A_hat)
    theta = N / D, var = (V_N - 2 theta C_ND + theta^2 V_D) / D^2 (delta method), with V and C from
    the labelled residuals and the unlabelled predictions (Hajek means, linearised variances,
    strata ignored, which errs wide). With few labelled positives k, var is shrunk toward the
    labels-only variance theta(1-theta)/m (m: the labelled domain's Kish size) with the weight of
    SHRINK_LABELS positives. The interval is Wilson's at the effective size theta(1-theta)/var
    (skewed like a rate near 0), never larger than the sample's whole domain. Degenerate cases:
    no labelled unit in the domain gives [0, 1]; theta at 0 gives [0, the labels-only Wilson bound].
    """
    L, U = sums.labelled, sums.unlabelled
    if L.n < 2:
        raise ValueError("PPI needs at least two labelled units")
    applies_hat = L.total("a_hat") + U.total("a_hat")
    naive = (L.total("f_hat") + U.total("f_hat")) / applies_hat if applies_hat > 0 else 0.0
    lam_n = _tuned(sums, "ay", "f_hat")
    lam_d = _tuned(sums, "a", "a_hat")
    num = lam_n * U.mean("f_hat") + L.mean("ay") - lam_n * L.mean("f_hat")
    den = lam_d * U.mean("a_hat") + L.mean("a") - lam_d * L.mean("a_hat")
    if sums.in_domain.n == 0 or den <= 0:
        return PPIResult(naive, 0.0, 1.0, float("inf"), lam_n, naive, lam_d)
    rn, rd = {"ay": 1.0, "f_hat": -lam_n}, {"a": 1.0, "a_hat": -lam_d}
    v_n = L.cov(rn, rn) + lam_n**2 * U.cov({"f_hat": 1}, {"f_hat": 1})
    v_d = L.cov(rd, rd) + lam_d**2 * U.cov({"a_hat": 1}, {"a_hat": 1})
    c_nd = L.cov(rn, rd) + lam_n * lam_d * U.cov({"f_hat": 1}, {"a_hat": 1})
    theta = min(max(num / den, 0.0), 1.0)
    var = max((v_n - 2 * theta * c_nd + theta * theta * v_d) / (den * den), 0.0)
    k, m = sums.positives, sums.in_domain.kish
    var = (k * var + SHRINK_LABELS * theta * (1 - theta) / m) / (k + SHRINK_LABELS)
    n_all = (L.kish + U.kish) * den  # about the domain's size had every sampled unit been labelled
    if theta <= 0:
        lo, hi = 0.0, wilson(k * m / sums.in_domain.n, m, z)[1]
    else:
        n_eff = min(theta * (1 - theta) / var if var > 0 and theta < 1 else n_all, n_all)
        lo, hi = wilson(theta * n_eff, n_eff, z)
    return PPIResult(theta, lo, hi, math.sqrt(var), lam_n, naive, lam_d)


# ---------------------------------------------------------------------------- Holm's critical values
# The gate itself is computed once, in dbt (release_gate.sql, the blocking check's table); these
# thresholds are its seed (deploysim.estimation.seeds).


ALPHA = 0.025  # one-sided error of each gate test (two-sided 95% intervals)
MAX_LOOKS = 20  # rounds of a sample grown until the gate decides (`deploysim run --until-decisive`)


def look_alpha(look: int, alpha: float = ALPHA) -> float:
    """One-sided error spent at a look: alpha for a fixed sample (look 0); at round r >= 1 of a
    growing sample alpha * 6 / (pi^2 r^2), which sums to alpha over all rounds. By the union bound the
    intervals then hold at every round at once (a confidence sequence over rounds), so stopping at
    the first decisive round keeps each error rate at most alpha."""
    if look < 0:
        raise ValueError("look must be >= 0")
    return alpha if look == 0 else alpha * 6 / (math.pi**2 * look * look)


def look_z(look: int) -> float:
    """The z of each interval bound at a look (1.96 for a fixed sample)."""
    return _N.inv_cdf(1 - look_alpha(look))


def holm_critical_z(m: int, alpha: float = ALPHA) -> list[float]:
    """z thresholds of Holm's steps for m one-sided tests: step k (1-based) rejects when z > crit[k-1]."""
    return [_N.inv_cdf(1 - alpha / (m - k)) for k in range(m)]
