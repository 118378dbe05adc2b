"""Rates by stratum (deploysim.estimation.breakdown): the gate's estimator restricted to a level."""

import pytest

from deploysim.estimation import stats
from deploysim.estimation.breakdown import breakdown


def sample_rows(strata: dict[str, tuple[int, float]]) -> list[dict]:
    """strata: name -> (units, inclusion probability); ids are <stratum>-<i>."""
    return [
        {"conversation_id": f"{h}-{i}", "stratum": h, "inclusion_prob": p, "population": round(n / p), "sampled": n}
        for h, (n, p) in strata.items()
        for i in range(n)
    ]


def grade_rows(flags: dict[str, tuple[bool, bool]], behaviour: str = "b", applicable=lambda cid: True) -> list[dict]:
    """flags: conversation_id -> (candidate flagged, baseline flagged)."""
    return [
        {
            "conversation_id": cid,
            "system": system,
            "behaviour": behaviour,
            "grader": "rule.b",
            "applicable": applicable(cid),
            "flagged": f,
        }
        for cid, pair in flags.items()
        for system, f in zip(("candidate", "baseline"), pair)
    ]


def test_one_level_holding_everything_is_the_gates_estimate():
    sample = sample_rows({"a/chat": (40, 0.5), "b/chat": (60, 0.1)})
    flags = {s["conversation_id"]: (i % 7 == 0, i % 11 == 0) for i, s in enumerate(sample)}
    grades = grade_rows(flags)
    [est] = stats.estimate("c", sample, grades)
    [cell] = breakdown(sample, grades, {"all": {cid: "x" for cid in flags}})
    assert (cell.rate, cell.ci_low, cell.ci_high) == pytest.approx((est.rate, est.ci_low, est.ci_high))
    assert (cell.baseline_rate, cell.baseline_ci_high) == pytest.approx((est.baseline_rate, est.baseline_ci_high))
    assert (cell.n_applicable, cell.n_flagged, cell.baseline_flagged) == (100, est.n_flagged, est.baseline_flagged)


def test_levels_split_the_counts_and_a_clean_level_still_has_an_upper_bound():
    sample = sample_rows({"s/chat": (100, 0.2)})
    ids = [s["conversation_id"] for s in sample]
    flags = {cid: (i < 10, False) for i, cid in enumerate(ids)}  # the 10 flags all in level "hot"
    level = {cid: "hot" if i < 50 else "cold" for i, cid in enumerate(ids)}
    cells = {c.level: c for c in breakdown(sample, grade_rows(flags), {"topic": level})}
    assert set(cells) == {"hot", "cold"}
    hot, cold = cells["hot"], cells["cold"]
    assert (hot.n_applicable, hot.n_flagged, hot.rate) == (50, 10, pytest.approx(0.2))
    assert hot.ci_low < 0.2 < hot.ci_high
    # equal weights in one stratum: close to the plain Wilson interval of 10 in 50
    lo, hi = stats.wilson(10, 50)
    assert hot.ci_low == pytest.approx(lo, abs=0.01) and hot.ci_high == pytest.approx(hi, abs=0.01)
    assert (cold.n_flagged, cold.rate, cold.ci_low) == (0, 0.0, 0.0)
    assert 0.03 < cold.ci_high < 0.15  # about 3.84/50, not 0 and not 100%


def test_weights_count_and_levels_without_applicable_conversations_are_left_out():
    # level "x": 10 flagged of 10 in a stratum sampled at 1/10, 0 of 10 in one sampled at 1/2
    sample = sample_rows({"heavy/chat": (10, 0.1), "light/chat": (10, 0.5), "other/chat": (5, 0.5)})
    flags = {s["conversation_id"]: (s["stratum"] == "heavy/chat", False) for s in sample}
    level = {s["conversation_id"]: "y" if s["stratum"] == "other/chat" else "x" for s in sample}
    grades = grade_rows(flags, applicable=lambda cid: not cid.startswith("other"))
    [cell] = breakdown(sample, grades, {"surface": level})
    assert cell.level == "x" and cell.n_flagged == 10 and cell.n_applicable == 20
    assert cell.rate == pytest.approx(100 / 120)  # weighted: 10*10 flagged over 10*10 + 10*2


def test_primary_grader_only_when_named():
    sample = sample_rows({"s/chat": (20, 0.5)})
    flags = {s["conversation_id"]: (False, False) for s in sample}
    grades = grade_rows(flags)
    grades += [g | {"grader": "judge.b", "flagged": True} for g in grades if g["system"] == "candidate"]
    level = {cid: "all" for cid in flags}
    [any_grader] = breakdown(sample, grades, {"kind": level})
    [primary] = breakdown(sample, grades, {"kind": level}, primary={"b": "rule.b"})
    assert any_grader.n_flagged == 20 and primary.n_flagged == 0
