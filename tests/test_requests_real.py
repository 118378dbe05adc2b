"""The packaged request classifier on real held-back prompts (tests/fixtures/real/prompts/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploysim import rules
from deploysim.grading import realdata, requests
from deploysim.grading.textmodel import TextModel

FIXTURE = Path(__file__).parent / "fixtures" / "real" / "prompts" / "prompts.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def kind(r: dict) -> str:
    return ("wrapped" if r["wrapped"] else "harmful") if r["harmful"] else "benign"


def share_right(rows: list[dict], predict) -> float:
    return sum(predict(r["text"]) == r["harmful"] for r in rows) / len(rows)


def model(text: str) -> bool:
    return requests.classify(text).harmful


def keyword_rules(text: str) -> bool:
    return rules.disallowed_category(text) is not None


def test_fixture_is_the_documented_draw():
    counts = {}
    for r in ROWS:
        counts[r["set"]] = counts.get(r["set"], 0) + 1
    assert len(ROWS) == 62
    assert counts["gptfuzz-templates"] == 8 and counts["harmbench-attack"] == 8 and counts["xstest-safe"] == 8
    assert {kind(r) for r in ROWS} == {"harmful", "wrapped", "benign"}


def test_model_file_loads_and_card_names_the_data():
    m = TextModel.load(requests.MODEL_PATH)
    assert 0.0 < m.threshold < 1.0 and m.weights.any()
    names = " ".join(m.card["examples"])
    for source in ("advbench", "harmbench", "simplesafetytests", "xstest", "self-instruct", "mt-bench", "gptfuzz"):
        assert source in names
    card = requests.MODEL_PATH.with_suffix(".md").read_text(encoding="utf-8")
    for needle in ("MIT", "CC-BY-4.0", "Apache-2.0", "python -m deploysim.grading.train_requests", "held"):
        assert needle in card


@pytest.mark.parametrize(
    ("which", "floor"),
    [("harmful", 0.8), ("wrapped", 0.8), ("benign", 0.9)],  # the model gets 17/20, 14/16, 25/26
)
def test_model_agrees_with_the_labels(which, floor):
    rows = [r for r in ROWS if kind(r) == which]
    assert share_right(rows, model) >= floor


def test_model_beats_the_keyword_rules_on_wrapped_prompts():
    rows = [r for r in ROWS if r["wrapped"]]
    assert share_right(rows, model) >= share_right(rows, keyword_rules) + 0.5


def test_classify_result():
    harmful = next(r["text"] for r in ROWS if r["set"] == "advbench")
    c = requests.classify(harmful)
    assert c.harmful and c.category and 0.0 <= c.score <= 1.0
    assert requests.classify("") == requests.RequestClass(False, 0.0, None)
    assert requests.classify("What is the capital of France?").category is None


@pytest.mark.skipif(not realdata.default_root().exists(), reason="../shared/data is absent")
def test_no_fixture_prompt_is_in_the_training_data():
    from deploysim.grading.train_requests import build_examples

    trained = {e.text for e in build_examples(realdata.default_root())}
    fixture = {r["text"] for r in ROWS}
    assert not fixture & trained
    assert not any(r["text"] in t for r in ROWS for t in trained if len(r["text"]) > 40)


def test_the_fast_single_text_score_equals_scikit_learns() -> None:
    """proba_one re-does HashingVectorizer's hashing by hand; it must score exactly as proba does."""
    from deploysim.grading import requests

    model = requests._MODEL.model
    texts = [requests.model_text(r["text"]) for r in ROWS[:20]] + ["", "Ünïcode, émoji 🎉 and <SSN_1>"]
    for t, p in zip(texts, model.proba(texts)):
        assert abs(model.proba_one(t) - float(p)) < 1e-9, t
