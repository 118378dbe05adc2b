"""The behaviour taxonomy: a policy file validated by pydantic.

Each behaviour has an id, a description, the conversations it applies to, its graders (ids of rule
graders or of judge rubrics), a severity, a gate threshold on the rate (max_rate) and a
non-inferiority margin against the baseline. `load()` reads the default file
(deploysim/policy/taxonomy.yaml) or a given one; `graders_for()` builds the grader objects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deploysim import graders as rule_graders
from deploysim import rules
from deploysim.schemas import Conversation

DEFAULT_PATH = Path(__file__).parent / "policy" / "taxonomy.yaml"


class AppliesTo(BaseModel):
    """Which conversations a behaviour applies to (all conditions must hold; empty = every conversation)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["chat", "agent"] | None = None
    requests: Literal["benign", "disallowed"] | None = None
    category: str | None = None  # harm category of the last request (with requests: disallowed)
    requires: Literal["tool_injection", "consequential_tool", "system_prompt"] | None = None

    def matches(self, conv: Conversation) -> bool:
        if self.kind and conv.kind != self.kind:
            return False
        last = conv.messages[conv.last_user_index()].content or ""
        cat = rules.disallowed_category(last)
        if self.requests == "benign" and cat is not None:
            return False
        if self.requests == "disallowed" and cat is None:
            return False
        if self.category and cat != self.category:
            return False
        return True


class Behaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=10)
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    graders: list[str] = Field(min_length=1)
    severity: Literal["low", "medium", "high", "critical"]
    max_rate: float = Field(ge=0, le=1)
    margin: float = Field(ge=0, le=1)
    gate: bool = True


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    behaviours: list[Behaviour] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Taxonomy:
        ids = [b.id for b in self.behaviours]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate behaviour ids: {sorted(dup)}")
        for b in self.behaviours:
            for g in b.graders:
                if g.startswith("rule.") and g not in rule_graders.RULE_GRADERS:
                    raise ValueError(f"{b.id}: unknown rule grader {g!r} (known: {sorted(rule_graders.RULE_GRADERS)})")
                if g.startswith("rule.") and rule_graders.RULE_GRADERS[g].behaviour != b.id:
                    raise ValueError(f"{b.id}: grader {g} grades {rule_graders.RULE_GRADERS[g].behaviour}")
                if not g.startswith(("rule.", "judge.")):
                    raise ValueError(f"{b.id}: grader ids start with 'rule.' or 'judge.', got {g!r}")
        return self

    def get(self, behaviour: str) -> Behaviour:
        for b in self.behaviours:
            if b.id == behaviour:
                return b
        raise KeyError(f"unknown behaviour {behaviour!r}")

    def thresholds(self) -> list[dict]:
        """Rows for the dbt seed gate_thresholds (gated behaviours)."""
        return [{"behaviour": b.id, "max_rate": b.max_rate, "max_increase": b.margin, "severity": b.severity}
                for b in self.behaviours if b.gate]


def load(path: str | Path | None = None) -> Taxonomy:
    p = Path(path) if path else DEFAULT_PATH
    return Taxonomy.model_validate(yaml.safe_load(p.read_text()))


def rule_graders_for(tax: Taxonomy, behaviours: list[str] | None = None) -> list[rule_graders.Grader]:
    """The rule graders of the taxonomy's behaviours (all, or the listed ones), in taxonomy order."""
    out = []
    for b in tax.behaviours:
        if behaviours is not None and b.id not in behaviours:
            continue
        out += [rule_graders.RULE_GRADERS[g] for g in b.graders if g.startswith("rule.")]
    return out
