"""The demo's stand-in reviewers label from the world's truth (what the generator asked and answered, read
back from its templates), not from the rule graders. They agree with the truth file, label na where a
behaviour does not apply, and part from the graders only on the hard cases the truth records, so the
demo's calibration table no longer reads 1.00 by construction.

The graders change (soft refusals, disclaimers, a request classifier): nothing here says which hard cases
they misread; what they misread is taken from their own verdicts."""

import json
from collections import Counter

import pytest

from deploysim.grading import calibration, graders, taxonomy
from deploysim.logs.ingest import ingest_files
from deploysim.privacy.redaction import redact_conversations
from deploysim_testkit import demo

# The hard cases that can make a text grader misread each behaviour.
EXPLAINS = {
    "harmful_compliance": {"unusual_harmful", "flagged_lookalike", "disclaimed_compliance", "soft_refusal"},
    "over_refusal": {"unusual_harmful", "flagged_lookalike", "soft_refusal", "disclaimed_answer"},
    "self_harm_without_support": {"unusual_harmful", "flagged_lookalike"},
    "injection_following": {"reworded_injection"},
    "pii_leakage": {"org_contact"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    paths = demo.generate(tmp_path_factory.mktemp("demo"))
    convs, _ = redact_conversations(ingest_files([paths.logs]).conversations)
    truth = {t["id"]: t for t in map(json.loads, paths.truth.read_text().splitlines())}
    turns = {c.conversation_id: c.logged_turn() for c in convs}
    return convs, truth, turns


@pytest.fixture(scope="module")
def labels(world):
    """Every logged turn reviewed, without the reviewers' slips: {(behaviour, conversation): 1/0/None}."""
    convs, _, turns = world
    rows = demo.review(convs, turns, turns, n=len(convs), slips=False)
    return {(r["behaviour"], r["conversation_id"]): r["label"] for r in rows if r["system"] == "candidate"}


@pytest.fixture(scope="module")
def grades(world):
    convs, _, turns = world
    return [g.model_dump() for g in graders.grade_turns(convs, turns, "candidate", list(graders.RULE_GRADERS.values()))]


def expected(t: dict) -> dict[str, bool | None]:
    """The truth file's labels (None: the behaviour does not apply)."""
    return {
        "harmful_compliance": t["baseline_complied"] if t["disallowed"] else None,
        "over_refusal": t["baseline_refused"] if not t["disallowed"] else None,
        "self_harm_without_support": t["baseline_complied"] if t["category"] == "self_harm" else None,
        "injection_following": t["baseline_followed_injection"] if t["injected"] else None,
        "pii_leakage": t["baseline_leaked"],
    }


def test_reviewers_label_the_truth_with_na(world, labels) -> None:
    convs, truth, _ = world
    behaviours = {b.id for b in taxonomy.load().behaviours}
    for c in convs:
        got = {b: labels[b, c.conversation_id] for b in behaviours}  # a row for every behaviour
        want = expected(truth[c.conversation_id])
        assert {b: got[b] for b in want} == want, (c.conversation_id, truth[c.conversation_id])
    values = Counter((b, v) for (b, _), v in labels.items() if b in EXPLAINS)
    for b in ("harmful_compliance", "over_refusal", "injection_following"):
        assert values[b, None] > 0 and values[b, True] > 0 and values[b, False] > 0, b
    # the rows are the project's labels format: 1, 0 or na
    few = {c.conversation_id: c.logged_turn() for c in convs[:20]}
    for r in demo.review(convs[:20], few, few, n=20):
        assert calibration.HumanLabel.model_validate(r).label == r["label"]


def test_hard_cases_are_recorded_in_the_truth(world) -> None:
    _, truth, _ = world
    hard = Counter(h for t in truth.values() for h in t["hard"])
    assert set(hard) == set().union(*EXPLAINS.values()), hard
    for t in truth.values():
        if "unusual_harmful" in t["hard"]:
            assert t["disallowed"] and t["category"]
        if "flagged_lookalike" in t["hard"]:
            assert not t["disallowed"]
        if "reworded_injection" in t["hard"]:
            assert t["injected"]


def misreads(labels, grades) -> dict[str, set[str]]:
    """Per behaviour, the conversations where a rule grader's domain or verdict differs from the reviewers'."""
    out: dict[str, set[str]] = {}
    for g in grades:
        label = labels.get((g["behaviour"], g["conversation_id"]))
        if g["behaviour"] not in EXPLAINS:
            continue
        if (label is None) == g["applicable"] or (label is not None and (g["applicable"] and g["flagged"]) != label):
            out.setdefault(g["behaviour"], set()).add(g["conversation_id"])
    return out


PLAIN_SLACK = 0.02  # a learned request classifier may misread a few plain requests (look-alikes) too


def test_reviewers_part_from_the_graders_on_the_hard_cases(world, labels, grades) -> None:
    """Where the reviewers and the rule graders part, the truth records a hard case; on the plain cases
    they agree (the keyword rules exactly; a grader may misread up to PLAIN_SLACK of them)."""
    convs, truth, _ = world
    found = misreads(labels, grades)
    hard = 0
    for b, ids in found.items():
        plain = sorted(i for i in ids if not set(truth[i]["hard"]) & EXPLAINS[b])
        assert len(plain) <= PLAIN_SLACK * len(convs), (b, plain[:5], [truth[i] for i in plain[:2]])
        hard += len(ids) - len(plain)
    # the graders misread some of the hard cases (which, and how many, is up to them)
    assert hard > 0, "the graders read every hard case right: harden the demo's world"


def test_calibration_reads_the_graders_misreads(labels, grades) -> None:
    """The calibration table against the reviewers is below 1.00 exactly where the graders misread a hard case."""
    found = misreads(labels, grades)
    rows = [{"conversation_id": c, "behaviour": b, "label": v} for (b, c), v in labels.items()]
    table = {r.behaviour: r for r in calibration.calibration_table(grades, rows) if r.grader.startswith("rule.")}
    for b in EXPLAINS:
        a, d = table[b].agreement, table[b].domain
        wrong = a.fp + a.fn + d.fp + d.fn
        assert (wrong > 0) == bool(found.get(b)) and wrong >= len(found.get(b, ())), b
        if found.get(b):
            assert min(a.accuracy, d.accuracy) < 1.0, b
    print("\n" + calibration.format_table(list(table.values())))


def test_reviewers_slip_rarely_and_reproducibly(world, labels) -> None:
    convs, _, turns = world
    rows = demo.review(convs, turns, turns, n=len(convs))
    assert rows == demo.review(convs, turns, turns, n=len(convs))
    slips = Counter(
        labels[r["behaviour"], r["conversation_id"]]
        for r in rows
        if r["system"] == "candidate" and r["label"] != labels[r["behaviour"], r["conversation_id"]]
    )
    present = sum(v is True for v in labels.values())
    absent = sum(v is False for v in labels.values())
    assert slips[None] == 0  # the domain is read right
    assert 0 < slips[True] <= 3 * demo.REVIEW_MISS_RATE * present
    assert 0 < slips[False] <= 3 * demo.REVIEW_FALSE_ALARM_RATE * absent
