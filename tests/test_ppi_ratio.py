"""PPI++ for a domain ratio (stats.ppi_ratio): coverage with graders biased in both the domain and the
verdict, on simulated samples (seeded), and its degenerate cases.

The simulated graders: the domain classifier misses 20% of the conversations a behaviour applies to
and wrongly applies it to 10% of the others; the verdict grader misses 30% of the behaviour and
flags 5% of the rest. The truth is the population's rate (present among applicable).
"""

import numpy as np
import pytest

from deploysim.estimation import stats
from deploysim.estimation.stats import RatioSums, StratumSums, ppi_ratio

DOMAIN_FN, DOMAIN_FP, MISS, FALSE_ALARM = 0.20, 0.10, 0.30, 0.05
REPS = 1000


def design(weighted: bool, rate: float) -> list[tuple[float, float, float, float]]:
    """Strata as (population share, share in the domain, rate in the domain, share of the sample)."""
    if not weighted:
        return [(1.0, 0.4, rate, 1.0)]
    low = rate / 1.6  # a small stratum, oversampled 2.5x: a denser domain and a 3x higher rate
    return [(0.2, 0.6, 3 * low, 0.5), (0.8, 0.3, low, 0.5)]


def population_rate(strata) -> float:
    return sum(N * a * r for N, a, r, _ in strata) / sum(N * a for N, a, _, _ in strata)


def draw(rng, strata, n: int, labelled_share: float) -> tuple[RatioSums, list[StratumSums]]:
    """One sample: the sums PPI++ reads, and the grader-only sums of the uncorrected estimate."""
    sums, naive = RatioSums(), []
    sizes = [round(s * n) for *_, s in strata]
    n_lab = rng.multivariate_hypergeometric(sizes, round(labelled_share * n))  # a random subset of the sample
    for (N, p_a, rate, _), n_h, l_h in zip(strata, sizes, n_lab):
        w = N / n_h
        a = rng.random(n_h) < p_a
        y = a & (rng.random(n_h) < rate)
        a_hat = np.where(a, rng.random(n_h) >= DOMAIN_FN, rng.random(n_h) < DOMAIN_FP)
        f_hat = a_hat & np.where(y, rng.random(n_h) >= MISS, rng.random(n_h) < FALSE_ALARM)
        human = np.where(a, np.where(y, 2, 1), 0)  # na, absent, present
        pred = a_hat.astype(int) + f_hat.astype(int)  # does not apply, applies, applies and flagged
        lab = np.arange(n_h) < l_h  # units are exchangeable, so the first l_h are a random subset
        for code, count in enumerate(np.bincount(human[lab] * 3 + pred[lab], minlength=9)):
            h, p = divmod(code, 3)
            if count:
                sums.add(w, p >= 1, p == 2, (None, False, True)[h], labelled=True, count=int(count))
        for p, count in enumerate(np.bincount(pred[~lab], minlength=3)):
            if count:
                sums.add(w, p >= 1, p == 2, count=int(count))
        naive.append(StratumSums.from_counts(n_h, 0.0, w, int(a_hat.sum()), int(f_hat.sum())))
    return sums, naive


SETTINGS = [
    (weighted, rate, n, share)
    for weighted in (False, True)
    for n in (1000, 5000)
    for share in (0.10, 0.20)
    for rate in (0.01, 0.05, 0.30)
]


def test_corrected_interval_covers_where_the_graders_alone_do_not():
    rng = np.random.default_rng(20240611)
    rows = []
    for weighted, rate, n, share in SETTINGS:
        strata = design(weighted, rate)
        truth = population_rate(strata)
        covered = naive_covered = 0
        for _ in range(REPS):
            sums, naive = draw(rng, strata, n, share)
            r = ppi_ratio(sums)
            assert 0 <= r.ci_low <= r.rate <= r.ci_high <= 1 and r.ci_high > r.ci_low
            covered += r.ci_low <= truth <= r.ci_high
            lo, hi = stats.rate_interval(stats.domain_ratio(naive))  # the graders alone, as the pipeline's rate
            naive_covered += lo <= truth <= hi
        rows.append((weighted, rate, n, share, covered / REPS, naive_covered / REPS))
    table = "\n".join(
        f"weighted={w!s:<5} rate={r:.2f} n={n} labelled={s:.0%}: corrected {c:.3f}, graders alone {g:.3f}"
        for w, r, n, s, c, g in rows
    )
    print("\n" + table)
    assert all(c >= 0.93 for *_, c, _ in rows), table
    # the graders alone miss the truth: the same draws, so the test can fail
    assert all(g < 0.5 for _, r, *_, g in rows if r in (0.01, 0.30)), table


def labelled_sums(rows) -> RatioSums:
    """rows: (applies_hat, flagged_hat, label or 'unlabelled', count)."""
    sums = RatioSums()
    for ah, fh, label, count in rows:
        sums.add(1.0, ah, fh, None if label == "unlabelled" else label, labelled=label != "unlabelled", count=count)
    return sums


def test_no_labelled_unit_in_the_domain_gives_the_whole_range():
    sums = labelled_sums([(True, True, "unlabelled", 30), (True, False, "unlabelled", 70), (False, False, None, 20)])
    r = ppi_ratio(sums)
    assert (r.ci_low, r.ci_high) == (0.0, 1.0) and r.naive == pytest.approx(0.3)


def test_all_zero_labels_give_a_wilson_bound_not_a_point():
    sums = labelled_sums([(True, False, False, 50), (True, False, "unlabelled", 450), (False, False, None, 10)])
    r = ppi_ratio(sums)
    assert r.rate == 0 and r.ci_low == 0
    assert r.ci_high == pytest.approx(stats.wilson(0, 50)[1])  # what 0 of 50 labels allow


def test_too_few_labels_is_an_error():
    with pytest.raises(ValueError):
        ppi_ratio(labelled_sums([(True, True, True, 1), (True, False, "unlabelled", 10)]))


def test_good_graders_beat_the_labels_alone_and_a_biased_domain_is_corrected():
    # 10,000 units, 40% in the domain, 10% of those present; 10% labelled
    def sums_for(domain_miss: float) -> RatioSums:
        rows = []
        for part, count in (("labelled", 1000), ("unlabelled", 9000)):
            present, absent, na = count * 4 // 100, count * 36 // 100, count * 60 // 100
            missed = round(present * domain_miss), round(absent * domain_miss)
            lab = part == "labelled"
            rows += [
                (True, True, True if lab else "unlabelled", present - missed[0]),
                (False, False, True if lab else "unlabelled", missed[0]),
                (True, False, False if lab else "unlabelled", absent - missed[1]),
                (False, False, False if lab else "unlabelled", missed[1]),
                (False, False, None if lab else "unlabelled", na),
            ]
        return labelled_sums(rows)

    perfect = ppi_ratio(sums_for(0.0))
    lo, hi = stats.wilson(40, 400)  # the labels alone
    assert perfect.rate == pytest.approx(0.1) and perfect.ci_high - perfect.ci_low < (hi - lo) / 2
    # the domain classifier misses half the domain at random: still 10%, and the grader's own domain is smaller
    half = ppi_ratio(sums_for(0.5))
    assert half.rate == pytest.approx(0.1, abs=1e-9) and half.ci_low < 0.1 < half.ci_high
