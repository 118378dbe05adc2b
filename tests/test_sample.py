from collections import Counter

import pytest

from deploysim.sampling.stratified import allocate, stratified_sample, stratum_of


def units():
    return (
        [(f"a{i}", "billing/chat") for i in range(600)]
        + [(f"b{i}", "travel/agent") for i in range(300)]
        + [(f"c{i}", "rare/agent") for i in range(5)]
    )


def test_proportional_allocation_with_minimum():
    alloc = allocate({"x": 600, "y": 300, "z": 5}, 90)
    assert sum(alloc.values()) == 90
    assert alloc["x"] == pytest.approx(60, abs=2) and alloc["y"] == pytest.approx(30, abs=2)
    assert alloc["z"] >= 2


def test_inclusion_probabilities_match_allocation():
    rows = stratified_sample(units(), 100, seed=1)
    assert len(rows) == 100 and len({r.conversation_id for r in rows}) == 100
    per = Counter(r.stratum for r in rows)
    for r in rows:
        assert r.inclusion_prob == pytest.approx(per[r.stratum] / r.population)
    # Horvitz-Thompson weights add up to the population
    assert sum(1 / r.inclusion_prob for r in rows) == pytest.approx(905)


def test_seeded_and_order_independent():
    a = stratified_sample(units(), 50, seed=3)
    b = stratified_sample(list(reversed(units())), 50, seed=3)
    c = stratified_sample(units(), 50, seed=4)
    assert {r.conversation_id for r in a} == {r.conversation_id for r in b}
    assert {r.conversation_id for r in a} != {r.conversation_id for r in c}


def test_sample_larger_than_population_takes_everything():
    rows = stratified_sample(units(), 10_000)
    assert len(rows) == 905 and all(r.inclusion_prob == 1 for r in rows)


# ---------------------------------------------------------------------------- many strata (issue 15, finding 8)


def many_strata(n_topics: int = 1000, per_topic: int = 3) -> list[tuple[str, str]]:
    """n_topics x 2 kinds, a few conversations each, plus two big strata."""
    out = [
        (f"t{t}-{k}-{i}", stratum_of(f"t{t}", k))
        for t in range(n_topics)
        for k in ("chat", "agent")
        for i in range(per_topic if k == "chat" else 1)
    ]
    return (
        out + [(f"big{i}", "billing/chat") for i in range(4000)] + [(f"trip{i}", "travel/agent") for i in range(1000)]
    )


def _check_design(units: list[tuple[str, str]], rows) -> None:
    """Every unit lies in exactly one stratum that was sampled, and each row's inclusion_prob is
    that stratum's k/N: the Horvitz-Thompson weights add up to the population."""
    ids = {r.conversation_id for r in rows}
    assert len(ids) == len(rows)
    per = Counter(r.stratum for r in rows)
    pop = {r.stratum: r.population for r in rows}
    for r in rows:
        assert r.sampled == per[r.stratum] >= 1
        assert r.inclusion_prob == pytest.approx(r.sampled / r.population)
    assert sum(pop.values()) == len(units)  # no stratum left with 0 sampled
    assert sum(1 / r.inclusion_prob for r in rows) == pytest.approx(len(units))


@pytest.mark.parametrize("n", [1000, 500, 37, 3, 1])
def test_thousand_strata_at_any_sample_size(n):
    units = many_strata()
    assert len({s for _, s in units}) == 2002
    rows = stratified_sample(units, n, seed=7)
    assert len(rows) == n
    _check_design(units, rows)
    if n >= 4:
        assert {"billing/chat", "travel/agent"} <= {r.stratum for r in rows}  # big strata keep their own


def test_allocation_never_crashes_and_sums_to_n():
    sizes = {f"s{i}": 1 + i % 7 for i in range(1000)}
    for n in (1, 10, 999, 1500, 2500):
        alloc = allocate(sizes, n)
        assert sum(alloc.values()) == n and all(0 <= alloc[h] <= sizes[h] for h in sizes)
    assert all(v >= 1 for v in allocate(sizes, 2500).values())  # minimums fit: each stratum at least 1


def test_weighted_estimates_stay_unbiased_with_pooled_strata():
    """Across seeds, the weighted total of a topic-dependent outcome averages to the truth, and
    the stats estimator's rate covers it: pooled strata carry true inclusion probabilities."""
    from deploysim.estimation.stats import estimate

    units = many_strata(n_topics=300, per_topic=2)
    flagged = {cid for cid, s in units if s.startswith(("t1", "t2")) or cid.startswith("trip")}
    truth = len(flagged)
    totals = []
    for seed in range(150):
        rows = stratified_sample(units, 120, seed=seed)
        totals.append(sum(1 / r.inclusion_prob for r in rows if r.conversation_id in flagged))
    assert sum(totals) / len(totals) == pytest.approx(truth, rel=0.05)

    rows = [r.model_dump() for r in stratified_sample(units, 600, seed=1)]
    grades = [
        {
            "conversation_id": r["conversation_id"],
            "system": system,
            "behaviour": "b",
            "grader": "g",
            "applicable": True,
            "flagged": r["conversation_id"] in flagged,
        }
        for r in rows
        for system in ("candidate", "baseline")
    ]
    (e,) = estimate("x", rows, grades, finite_population=True)
    assert e.ci_low <= truth / len(units) <= e.ci_high
