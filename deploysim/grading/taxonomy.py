"""The behaviour taxonomy: a policy file validated by pydantic.

Each behaviour has an id, a description, the conversations it applies to, its graders (ids of rule
graders or of judge rubrics), a severity, a gate threshold on the rate (max_rate) and a
non-inferiority margin against the baseline. `load()` reads the default file
(deploysim/grading/taxonomy.yaml) or a given one; `graders_for()` builds the grader objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deploysim import rules
from deploysim.errors import NotFound
from deploysim.grading import graders as rule_graders
from deploysim.grading import injection
from deploysim.schemas import Conversation

DEFAULT_PATH = Path(__file__).parent / "taxonomy.yaml"


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
        if self.requires and not _REQUIRES[self.requires](conv):
            return False
        return True


def _has_injection(conv: Conversation) -> bool:
    return injection.applies(conv)


def _has_consequential_tool(conv: Conversation) -> bool:
    return any(rule_graders.CONSEQUENTIAL_RE.match(n) for n in rule_graders.tool_names(conv))


def _has_system_prompt(conv: Conversation) -> bool:
    return any(m.role == "system" and len(m.content or "") >= rule_graders.SystemPromptLeak.span for m in conv.messages)


_REQUIRES = {
    "tool_injection": _has_injection,
    "consequential_tool": _has_consequential_tool,
    "system_prompt": _has_system_prompt,
}


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
        raise NotFound(
            f"unknown behaviour {behaviour!r}; the taxonomy lists {', '.join(b.id for b in self.behaviours)}"
        )

    def thresholds(self) -> list[dict]:
        """Rows for the dbt seed gate_thresholds (gated behaviours)."""
        return [
            {"behaviour": b.id, "max_rate": b.max_rate, "max_increase": b.margin, "severity": b.severity}
            for b in self.behaviours
            if b.gate
        ]

    def primary_graders(self) -> dict[str, str]:
        """behaviour -> the grader whose verdict the estimate uses (the first listed)."""
        return {b.id: b.graders[0] for b in self.behaviours}


def load(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy at path (settings: taxonomy), else the packaged default policy file."""
    p = Path(path or DEFAULT_PATH)
    return Taxonomy.model_validate(yaml.safe_load(p.read_text()))


class BehaviourGrader:
    """A grader scoped to a taxonomy behaviour: it applies where the behaviour and the grader both apply."""

    def __init__(self, behaviour: Behaviour, grader: rule_graders.Grader) -> None:
        self.spec, self.inner = behaviour, grader
        self.id, self.behaviour = grader.id, behaviour.id
        if hasattr(grader, "prepare"):  # the batch hook of model graders
            self.prepare = grader.prepare

    def applies(self, conv: Conversation) -> bool:
        return self.spec.applies_to.matches(conv) and self.inner.applies(conv)

    def grade(self, conv: Conversation, turn: list) -> rule_graders.Verdict:
        return self.inner.grade(conv, turn)


def graders_for(tax: Taxonomy, judge=None, behaviours: list[str] | None = None) -> list[BehaviourGrader]:
    """Every grader the taxonomy names, scoped to its behaviour, in taxonomy order.

    judge: a deploysim.grading.judge.Judge; judge.* graders are built with it, or left out when it is None
    (a taxonomy whose gated behaviour has only judge graders then needs a judge: ValueError; one not gated
    is left out).
    """
    out = []
    for b in tax.behaviours:
        if behaviours is not None and b.id not in behaviours:
            continue
        gs: list = []
        for g in b.graders:
            if g.startswith("rule."):
                gs.append(rule_graders.RULE_GRADERS[g])
            elif judge is not None:
                from deploysim.grading.judge import JudgeGrader

                gs.append(JudgeGrader(judge, b.id, g, b.description))
        if not gs and not b.gate:
            continue  # a judge-only behaviour that is not gated (one promoted from discovery): graded with a judge
        if not gs:
            raise ValueError(f"behaviour {b.id} has only judge graders and no judge is configured")
        out += [BehaviourGrader(b, g) for g in gs]
    return out


def rule_graders_for(tax: Taxonomy, behaviours: list[str] | None = None) -> list[rule_graders.Grader]:
    """The rule graders of the taxonomy's behaviours (all, or the listed ones), in taxonomy order."""
    out = []
    for b in tax.behaviours:
        if behaviours is not None and b.id not in behaviours:
            continue
        out += [rule_graders.RULE_GRADERS[g] for g in b.graders if g.startswith("rule.")]
    return out
