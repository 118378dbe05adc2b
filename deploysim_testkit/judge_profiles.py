"""Judge profiles of the reference endpoint: LLM-judge stand-ins with a configured accuracy.

A judge profile reads the request deploysim.grading.judge sends (behaviour, conversation and response as
JSON), takes the truth from the behaviour's rule grader, and answers with a JSON verdict that is
right with the configured probabilities:
    P(flagged | truth)      = sensitivity
    P(not flagged | !truth) = specificity
Draws are derived from the request (and its `seed`, so k samples differ), so answers are
deterministic per request. `invalid_rate` answers prose instead of JSON (re-asks get a fresh draw).
The endpoint routes every model name in JUDGE_PROFILES here.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from pydantic import BaseModel, Field

from deploysim.schemas import Conversation, Message


class JudgeProfile(BaseModel):
    name: str
    sensitivity: float = Field(ge=0, le=1)
    specificity: float = Field(ge=0, le=1)
    invalid_rate: float = Field(default=0.0, ge=0, le=1)


JUDGE_PROFILES: dict[str, JudgeProfile] = {
    p.name: p
    for p in [
        JudgeProfile(name="judge-accurate", sensitivity=0.95, specificity=0.98),
        JudgeProfile(name="judge-biased", sensitivity=0.70, specificity=0.90),  # misses 30%, 10% false alarms
        JudgeProfile(name="judge-sloppy", sensitivity=0.95, specificity=0.98, invalid_rate=0.30),
    ]
}


def handles(model: str) -> bool:
    return model in JUDGE_PROFILES


def _draw(canon: str, label: str) -> float:
    return int(hashlib.sha256(f"{canon}\x00{label}".encode()).hexdigest()[:13], 16) / float(16**13)


_BLOCK = re.compile(r"```json\n(.*?)\n```", re.DOTALL)
_BEHAVIOUR = re.compile(r"^Behaviour: ([a-z][a-z0-9_]*)", re.MULTILINE)


def truth(behaviour: str, conv: Conversation, turn: list[Message]) -> bool:
    """The known truth a judge profile errs around: the behaviour's rule grader (False if none)."""
    from deploysim.grading.graders import RULE_GRADERS

    g = RULE_GRADERS.get(f"rule.{behaviour}")
    return bool(g and g.grade(conv, turn).flagged)


def _question(messages: list[dict[str, Any]]) -> tuple[str, Conversation, list[Message]] | None:
    first = next((m for m in messages if m.get("role") == "user"), None)
    text = first.get("content") if first else None
    if not isinstance(text, str):
        return None
    b, blocks = _BEHAVIOUR.search(text), _BLOCK.findall(text)
    if not b or len(blocks) != 2:
        return None
    try:
        c = json.loads(blocks[0])
        turn = [Message.model_validate(m) for m in json.loads(blocks[1])]
        # the judged turn follows the prefix (graders that read the logged turn, e.g. injections, see it)
        conv = Conversation(
            conversation_id="judged",
            messages=[*c["messages"], *[m.model_dump() for m in turn]],
            tools=c.get("tools") or [],
        )
    except (ValueError, KeyError, TypeError):
        return None
    return b.group(1), conv, turn


def verdict(profile: JudgeProfile, body: dict[str, Any]) -> str:
    """The judge's answer text for a chat-completions request body."""
    messages = body["messages"]
    canon = json.dumps({"model": body["model"], "messages": messages, "seed": body.get("seed")}, sort_keys=True)
    q = _question(messages)
    if q is None:
        return "I could not find a conversation to grade."
    behaviour, conv, turn = q
    if _draw(canon, "invalid") < profile.invalid_rate:
        return f"The response looks {'fine' if _draw(canon, 'prose') < 0.5 else 'problematic'} to me."
    t = truth(behaviour, conv, turn)
    flagged = (_draw(canon, "sens") < profile.sensitivity) if t else (_draw(canon, "spec") >= profile.specificity)
    said = " ".join(m.content or "" for m in turn if m.role == "assistant")[:120]
    why = ("The response shows the behaviour" if flagged else "The response does not show the behaviour") + (
        f"; it says: {said!r}" if said else "."
    )
    return json.dumps({"behaviour": behaviour, "flagged": flagged, "rationale": why})


def respond(body: dict[str, Any]) -> dict[str, Any]:
    """A complete chat-completion response body from a judge profile."""
    content = verdict(JUDGE_PROFILES[body["model"]], body)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-{digest}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": len(content) // 4},
    }
