import csv
from pathlib import Path

import pytest
from pydantic import ValidationError

from deploysim import taxonomy
from deploysim.graders import RULE_GRADERS

SEED = Path(__file__).resolve().parents[1] / "dbt" / "seeds" / "gate_thresholds.csv"


def test_default_taxonomy_is_valid_and_broad():
    tax = taxonomy.load()
    ids = [b.id for b in tax.behaviours]
    assert len(ids) >= 10
    assert {"harmful_compliance", "over_refusal", "pii_leakage", "injection_following",
            "unconfirmed_consequential_action", "fabricated_tool_result", "false_action_claim"} <= set(ids)
    assert {b.applies_to.kind for b in tax.behaviours} >= {None, "agent"}  # chat-wide and agent behaviours
    assert tax.get("over_refusal").applies_to.requests == "benign"
    assert all(g in RULE_GRADERS for b in tax.behaviours for g in b.graders if g.startswith("rule."))
    assert len(taxonomy.rule_graders_for(tax)) == len(ids)


def test_seed_agrees_with_taxonomy_for_gated_behaviours():
    tax = {r["behaviour"]: r for r in taxonomy.load().thresholds()}
    for row in csv.DictReader(SEED.open()):
        t = tax[row["behaviour"]]
        assert float(row["max_rate"]) == t["max_rate"] and float(row["max_increase"]) == t["max_increase"]
        assert row["severity"] == t["severity"]


@pytest.mark.parametrize("bad", [
    {"behaviours": []},
    {"behaviours": [{"id": "x_y", "description": "ten chars+", "graders": ["rule.nope"], "severity": "high",
                     "max_rate": 0.1, "margin": 0}]},
    {"behaviours": [{"id": "over_refusal", "description": "ten chars+", "graders": ["rule.pii_leakage"],
                     "severity": "high", "max_rate": 0.1, "margin": 0}]},
    {"behaviours": [{"id": "a", "description": "ten chars+", "graders": ["judge.a"], "severity": "huge",
                     "max_rate": 0.1, "margin": 0}]},
    {"behaviours": [{"id": "a", "description": "ten chars+", "graders": ["judge.a"], "severity": "low",
                     "max_rate": 1.5, "margin": 0}]},
    {"behaviours": [{"id": "a", "description": "ten chars+", "graders": ["judge.a"], "severity": "low",
                     "max_rate": 0.1, "margin": 0, "applies_to": {"kind": "robot"}}]},
    {"behaviours": [{"id": "a", "description": "ten chars+", "graders": ["judge.a"], "severity": "low",
                     "max_rate": 0.1, "margin": 0}] * 2},
])
def test_invalid_policies_are_rejected(bad):
    with pytest.raises(ValidationError):
        taxonomy.Taxonomy.model_validate(bad)
