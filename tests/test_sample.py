from collections import Counter

import pytest

from deploysim.sample import allocate, stratified_sample


def units():
    return [(f"a{i}", "billing/chat") for i in range(600)] + [(f"b{i}", "travel/agent") for i in range(300)] + [
        (f"c{i}", "rare/agent") for i in range(5)]


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
