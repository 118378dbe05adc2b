import random

import pytest

from deploysim.stats import estimate, wilson


def srs(n, N=None):
    """One stratum, simple random sample of n from N (N huge -> no fpc)."""
    N = N or n * 10**6
    return [
        {"conversation_id": f"c{i}", "stratum": "all", "inclusion_prob": n / N, "population": N, "sampled": n}
        for i in range(n)
    ]


def grade(cid, system, flagged, applicable=True, behaviour="harm"):
    return {"conversation_id": cid, "system": system, "behaviour": behaviour, "grader": "rule",
            "applicable": applicable, "flagged": flagged}


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


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.20])
def test_coverage_stratified(rate):
    rng = random.Random(int(rate * 1000))
    # finite population; stratum rates scaled so the overall rate is about `rate`
    scale = rate * sum(N * a for N, _, _, a in STRATA) / sum(N * m * a for N, _, m, a in STRATA)
    pop = {}
    for h, (N, n, m, a) in enumerate(STRATA):
        pop[h] = [(rng.random() < a, rng.random() < scale * m) for _ in range(N)]
    app = sum(a for units in pop.values() for a, _ in units)
    truth = sum(a and y for units in pop.values() for a, y in units) / app

    reps, covered = 300, 0
    for _ in range(reps):
        sample, grades = [], []
        for h, (N, n, _, _) in enumerate(STRATA):
            for i in rng.sample(range(N), n):
                cid = f"{h}-{i}"
                sample.append({"conversation_id": cid, "stratum": str(h), "inclusion_prob": n / N,
                               "population": N, "sampled": n})
                a, y = pop[h][i]
                if a:  # ungraded units are outside the domain, same as applicable=False
                    grades.append(grade(cid, "candidate", y))
                    grades.append(grade(cid, "baseline", False))
        [e] = estimate("m", sample, grades)
        covered += e.ci_low <= truth <= e.ci_high
    assert 0.91 <= covered / reps <= 0.99, (rate, truth, covered / reps)
