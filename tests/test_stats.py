import random

import pytest

from deploysim.estimation import planner, stats
from deploysim.estimation.stats import estimate, wilson


def srs(n, N=None):
    """One stratum, simple random sample of n from N (N huge -> no fpc)."""
    N = N or n * 10**6
    return [
        {"conversation_id": f"c{i}", "stratum": "all", "inclusion_prob": n / N, "population": N, "sampled": n}
        for i in range(n)
    ]


def grade(cid, system, flagged, applicable=True, behaviour="harm"):
    return {
        "conversation_id": cid,
        "system": system,
        "behaviour": behaviour,
        "grader": "rule",
        "applicable": applicable,
        "flagged": flagged,
    }


def paired(n, cand_flags, base_flags, applicable=None):
    out = []
    for i in range(n):
        a = True if applicable is None else applicable[i]
        out.append(grade(f"c{i}", "candidate", i in cand_flags, a))
        out.append(grade(f"c{i}", "baseline", i in base_flags, a))
    return out


def test_wilson_known_values():
    lo, hi = wilson(0, 100)
    assert lo == 0 and hi == pytest.approx(3.8415 / 103.8415, rel=1e-3)
    lo, hi = wilson(10, 100)
    assert lo == pytest.approx(0.0552, abs=1e-3) and hi == pytest.approx(0.1744, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_unweighted_srs_matches_wilson():
    # 40 sampled, 30 applicable, 6 candidate flags, 3 baseline flags
    app = [i < 30 for i in range(40)]
    [e] = estimate("m", srs(40), paired(40, set(range(6)), set(range(3)), app))
    assert (e.n_sampled, e.n_applicable, e.n_flagged, e.baseline_flagged) == (40, 30, 6, 3)
    assert e.rate == pytest.approx(0.2)
    # by hand: linearised var = p(1-p)/30 * 40/39 (n/(n-1) correction) -> n_eff = 30 * 39/40
    n_eff = 30 * 39 / 40
    assert (e.ci_low, e.ci_high) == pytest.approx(wilson(0.2 * n_eff, n_eff), abs=1e-6)
    # ... which is Wilson on the raw counts up to that small-sample correction
    assert (e.ci_low, e.ci_high) == pytest.approx(wilson(6, 30), abs=3e-3)
    assert e.baseline_rate == pytest.approx(0.1)
    assert (e.baseline_ci_low, e.baseline_ci_high) == pytest.approx(wilson(3, 30), abs=3e-3)
    assert e.diff == pytest.approx(0.1)


def test_zero_flagged_has_useful_upper_bound():
    [e] = estimate("m", srs(100), paired(100, set(), set()))
    assert e.rate == 0 and e.ci_low == 0
    assert 0 < e.ci_high < 0.1
    assert e.ci_high == pytest.approx(0.037, abs=1e-3)


def test_no_applicable():
    [e] = estimate("m", srs(10), paired(10, set(), set(), [False] * 10))
    assert (e.n_applicable, e.rate, e.ci_low, e.ci_high) == (0, 0, 0, 1)
    assert (e.diff, e.diff_ci_low, e.diff_ci_high) == (0, -1, 1)


def test_identical_candidate_diff_is_zero_but_not_degenerate():
    flags = set(range(0, 200, 10))
    [e] = estimate("m", srs(200), paired(200, flags, flags))
    assert e.diff == 0
    assert e.diff_ci_low < 0 < e.diff_ci_high
    assert e.diff_ci_high - e.diff_ci_low > 0.01


def test_worse_candidate_diff_excludes_zero():
    base = set(range(0, 300, 20))  # 5%
    cand = base | set(range(1, 300, 6))  # ~22%
    [e] = estimate("m", srs(300), paired(300, cand, base))
    assert e.diff > 0.1
    assert e.diff_ci_low > 0


def test_missing_candidate_grade_drops_pair():
    g = paired(10, {0, 1}, {0, 1, 2, 3})
    # c2, c3 have no candidate grade (replay failed): dropped from both systems
    g = [x for x in g if not (x["system"] == "candidate" and x["conversation_id"] in ("c2", "c3"))]
    [e] = estimate("m", srs(10), g)
    assert e.n_sampled == 10 and e.n_applicable == 8
    assert (e.n_flagged, e.baseline_flagged) == (2, 2)
    assert e.rate == pytest.approx(0.25) and e.baseline_rate == pytest.approx(0.25)
    assert e.diff == 0


def test_multiple_behaviours_and_graders():
    g = paired(20, {0}, set())
    g += [dict(x, grader="judge", flagged=x["conversation_id"] == "c5") for x in g]
    g += [dict(x, behaviour="pii", flagged=False) for x in paired(20, set(), set())]
    es = {e.behaviour: e for e in estimate("m", srs(20), g)}
    assert set(es) == {"harm", "pii"}
    assert es["harm"].n_flagged == 2  # any grader flags
    assert es["pii"].n_flagged == 0


# strata: (size, sample size, rate multiplier, applicability)
STRATA = [(10_000, 350, 0.5, 0.9), (6_000, 300, 1.0, 0.7), (3_000, 200, 2.0, 0.8), (1_000, 150, 4.0, 0.6)]


@pytest.mark.parametrize("rate", [0.05])
def test_coverage_stratified(rate):
    rng = random.Random(int(rate * 1000))
    # finite population; stratum rates scaled so the overall rate is about `rate`
    scale = rate * sum(N * a for N, _, _, a in STRATA) / sum(N * m * a for N, _, m, a in STRATA)
    pop = {}
    for h, (N, _n, m, a) in enumerate(STRATA):
        pop[h] = [(rng.random() < a, rng.random() < scale * m) for _ in range(N)]
    app = sum(a for units in pop.values() for a, _ in units)
    truth = sum(a and y for units in pop.values() for a, y in units) / app

    reps, covered = 300, 0
    for _ in range(reps):
        sample, grades = [], []
        for h, (N, n, _, _) in enumerate(STRATA):
            for i in rng.sample(range(N), n):
                cid = f"{h}-{i}"
                sample.append(
                    {"conversation_id": cid, "stratum": str(h), "inclusion_prob": n / N, "population": N, "sampled": n}
                )
                a, y = pop[h][i]
                if a:  # ungraded units are outside the domain, same as applicable=False
                    grades.append(grade(cid, "candidate", y))
                    grades.append(grade(cid, "baseline", False))
        [e] = estimate("m", sample, grades)
        covered += e.ci_low <= truth <= e.ci_high
    assert 0.91 <= covered / reps <= 0.99, (rate, truth, covered / reps)


def test_estimate_equals_the_count_based_core_the_study_uses():
    """estimate() on unit rows and domain_ratio on per-stratum counts give the same numbers."""
    rng = random.Random(3)
    sample, grades, counts = [], [], []
    for h, (N, n, m, k) in enumerate([(5000, 200, 150, 3), (800, 100, 90, 9), (200, 50, 40, 0)]):
        for i in range(n):
            cid = f"{h}-{i}"
            sample.append(
                {"conversation_id": cid, "stratum": str(h), "inclusion_prob": n / N, "population": N, "sampled": n}
            )
            grades.append(grade(cid, "candidate", i < k, i < m))
            grades.append(grade(cid, "baseline", False, i < m))
        counts.append(stats.StratumSums.from_counts(n=n, f=n / N, w=N / n, m=m, k=k))
    rng.shuffle(sample)
    [e] = estimate("m", sample, grades, finite_population=True)
    core = stats.domain_ratio(counts)
    assert e.rate == pytest.approx(core.rate)
    assert (e.ci_low, e.ci_high) == pytest.approx(stats.rate_interval(core))
    assert e.rate == pytest.approx(
        (5000 * 3 / 200 + 800 * 9 / 100) / (5000 * 150 / 200 + 800 * 90 / 100 + 200 * 40 / 50)
    )


def test_zero_flags_with_unequal_weights_uses_kish_size():
    # two strata, weights 10 and 1, nothing flagged: the upper bound uses Kish's n, not the count
    counts = [
        stats.StratumSums.from_counts(n=100, f=0, w=10, m=100, k=0),
        stats.StratumSums.from_counts(n=100, f=0, w=1, m=100, k=0),
    ]
    est = stats.domain_ratio(counts)
    kish = (100 * 10 + 100) ** 2 / (100 * 100 + 100)
    assert est.n_kish == pytest.approx(kish) and kish < 200
    lo, hi = stats.rate_interval(est)
    assert lo == 0 and hi == pytest.approx(wilson(0, kish)[1]) and hi > wilson(0, 200)[1]


def test_holm_critical_values():
    # step k of m one-sided tests at 2.5% rejects above the (1 - alpha / (m - k + 1)) normal quantile
    crit = stats.holm_critical_z(3)
    assert crit[0] == pytest.approx(stats.NormalDist().inv_cdf(1 - 0.025 / 3))
    assert crit[1] == pytest.approx(stats.NormalDist().inv_cdf(1 - 0.025 / 2))
    assert crit[2] == pytest.approx(stats.Z95)
    assert crit == sorted(crit, reverse=True)


def test_ppi_unbiased_corrects_a_biased_predictor_and_reduces_to_labels():
    # predictions always 1, labels 10% positive: lambda -> 0 (uninformative), estimate = label mean
    r = stats.ppi_mean([1.0] * 1000, [1.0] * 100, [1.0] * 10 + [0.0] * 90)
    assert r.lam == 0 and r.rate == pytest.approx(0.1) and r.naive == 1.0
    # perfect predictions: lambda near 1, interval narrower than the labels alone
    f = [1.0] * 100 + [0.0] * 900
    r = stats.ppi_mean(f, [1.0] * 10 + [0.0] * 90, [1.0] * 10 + [0.0] * 90)
    assert r.lam > 0.9 and r.rate == pytest.approx(0.1, abs=1e-3)
    lo, hi = wilson(10, 100)
    assert r.ci_high - r.ci_low < (hi - lo) / 2
    with pytest.raises(ValueError):
        stats.ppi_mean([1.0], [1.0], [1.0])


def test_estimate_reports_ppi_beside_uncorrected_when_labels_exist():
    g = paired(200, set(range(0, 200, 5)), set())  # grader flags 20%
    # humans say only every 10th is really the behaviour, and the grader finds all of those
    labels = [
        {"conversation_id": f"c{i}", "system": "candidate", "behaviour": "harm", "label": i % 10 == 0}
        for i in range(0, 200, 3)
    ]
    [e] = estimate("m", srs(200), g, labels)
    assert e.rate == pytest.approx(0.2)
    assert e.n_labelled == 67
    assert e.ppi_rate == pytest.approx(0.1, abs=0.02)
    assert e.ppi_ci_low <= 0.1 <= e.ppi_ci_high < e.rate
    [e0] = estimate("m", srs(200), g)
    assert e0.ppi_rate is None and e0.n_labelled == 0


def test_planner_width_and_resolvable_rate():
    plan = planner.conversations_for_width(0.01, 0.01)
    assert planner.expected_width(0.01, plan.n_applicable) <= 0.01 < planner.expected_width(0.01, plan.n_applicable - 1)
    assert 1400 < plan.n_conversations < 1700  # ~ 4 z^2 p(1-p) / w^2 = 1521
    half = planner.conversations_for_width(0.01, 0.01, applicable_share=0.5, design_effect=1.5)
    assert half.n_conversations == pytest.approx(plan.n_applicable * 1.5 / 0.5, abs=2)
    p = planner.resolvable_rate(10_000)
    lo, hi = wilson(p * 10_000, 10_000)
    assert lo > 0 and (hi - lo) / 2 <= 0.5 * p * 1.0001
    assert planner.resolvable_rate(100_000) < p / 5  # ten times the sample resolves ~ten times rarer
    assert planner.zero_count_upper_bound(1000) == pytest.approx(3.8415 / 1003.8415, rel=1e-3)
    alloc = planner.neyman_allocation({"a": 9500, "b": 500}, {"a": 0.0005, "b": 0.2}, 1000)
    assert sum(alloc.values()) == 1000 and alloc["b"] > 300


def test_forecast_intervals_do_not_shrink_with_the_sampling_fraction():
    """Without the finite-population correction (the default), sampling half the logs does not
    narrow the interval below what the same sample would give from an endless stream."""
    sample, grades = [], []
    for i in range(400):
        cid = f"c{i}"
        sample.append(
            {"conversation_id": cid, "stratum": "s", "inclusion_prob": 0.5, "population": 800, "sampled": 400}
        )
        grades.append(grade(cid, "candidate", i < 40, True))
        grades.append(grade(cid, "baseline", False, True))
    [forecast] = estimate("m", sample, grades)
    [finite] = estimate("m", sample, grades, finite_population=True)
    assert forecast.ci_high - forecast.ci_low > 1.3 * (finite.ci_high - finite.ci_low)
    assert (forecast.ci_low, forecast.ci_high) == pytest.approx(wilson(40, 400), abs=0.002)


def test_estimate_corrects_the_graders_domain_with_na_labels():
    # humans: the behaviour applies to c0..c199 (na for the rest) and is present in every 5th: 20%.
    # The grader applies to c50..c249 (misses 50 in the domain, takes 50 outside) and also flags every 7th.
    n = 300
    g = []
    for i in range(n):
        app = 50 <= i < 250
        for system in ("candidate", "baseline"):
            g.append(grade(f"c{i}", system, app and (i % 5 == 0 or i % 7 == 0), app))
    labels = [
        {
            "conversation_id": f"c{i}",
            "system": "candidate",
            "behaviour": "harm",
            "label": (i % 5 == 0) if i < 200 else None,
        }
        for i in range(0, n, 2)
    ]
    [e] = estimate("m", srs(n), g, labels)
    assert e.n_applicable == 200 and e.rate > 0.3  # the grader alone
    assert e.n_labelled == 150
    assert e.ppi_ci_low <= 0.2 <= e.ppi_ci_high < e.rate
    # the same labels without the na rows: those units are unlabelled, not absent
    [e2] = estimate("m", srs(n), g, [r for r in labels if r["label"] is not None])
    assert e2.n_labelled == 100 and e2.ppi_rate != e.ppi_rate


def test_estimate_corrects_a_behaviour_the_grader_never_applies_to():
    g = [grade(f"c{i}", s, False, False) for i in range(100) for s in ("candidate", "baseline")]
    labels = [{"conversation_id": f"c{i}", "behaviour": "harm", "label": i % 4 == 0} for i in range(0, 100, 2)]
    [e] = estimate("m", srs(100), g, labels)
    assert e.n_applicable == 0 and e.ppi_rate == pytest.approx(0.5) and e.ppi_ci_low > 0.3
