"""The validation study: coverage over simulated replications, PPI with a biased judge, stratified vs SRS.

The replications run the pipeline's own estimator code on simulated per-stratum sums
(deploysim_testkit.stats_study); test_stats.py checks that those sums match what `estimate` builds from rows.
"""

import pytest

from deploysim_testkit import stats_study as S

REPS = 1000


@pytest.mark.parametrize("design", [S.SRS, S.STRATIFIED], ids=["srs", "stratified"])
def test_coverage_from_0_1_to_20_percent(design):
    table = [S.coverage(design, rate, REPS) for rate in S.RATES]
    shares = {c.rate: c.share for c in table}
    assert min(S.RATES) <= 0.001 and max(S.RATES) >= 0.20
    assert all(0.93 <= s <= 0.97 for s in shares.values()), shares
    # misses on both sides where the rate is not tiny: the intervals are not lopsided
    assert all(c.below > 0 and c.above > 0 for c in table if c.rate >= 0.01), table


def test_ppi_covers_with_a_biased_judge_and_uncorrected_does_not():
    r = S.ppi_study(truth=0.10, sensitivity=0.75, specificity=0.95, n_graded=2000, n_labelled=300, reps=REPS)
    assert r.mean_naive > 0.115  # the judge over-flags: 0.75*0.10 + 0.05*0.90 = 0.12
    assert abs(r.mean_ppi - 0.10) < 0.005  # PPI removes the bias
    assert 0.93 <= r.ppi_coverage <= 0.97, r
    assert r.naive_coverage < 0.5, r
    assert r.ppi_width < r.labels_only_width  # the unlabelled judge grades buy precision over labels alone


def test_stratified_is_30_percent_narrower_for_a_concentrated_behaviour():
    w = S.concentrated_widths(n=1000, reps=REPS)
    assert w.allocation["agent"] > 0.05 * w.n * 5  # Neyman allocation oversamples the small stratum
    assert w.ratio <= 0.70, w
    assert w.stratified_coverage >= 0.93 and w.srs_coverage >= 0.93, w


def test_binomial_sampler_is_unbiased():
    import random

    rng = random.Random(1)
    for n, p in ((2000, 0.001), (500, 0.3), (1000, 0.8)):
        draws = [S.binomial(rng, n, p) for _ in range(3000)]
        mean = sum(draws) / len(draws)
        var = sum((d - mean) ** 2 for d in draws) / (len(draws) - 1)
        assert abs(mean - n * p) < 4 * (n * p * (1 - p) / len(draws)) ** 0.5
        assert 0.85 < var / (n * p * (1 - p)) < 1.15
