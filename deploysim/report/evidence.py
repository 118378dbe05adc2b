"""What a grader saw in an example: its detail, the phrases to mark and, for an injection, the instruction.

Everything here is read from redacted conversations and redacted replay turns, so it is redacted text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Collection

from deploysim import rules
from deploysim.grading import injection
from deploysim.schemas import Conversation, Message

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)+)'|\"((?:[^\"\\]|\\.)+)\"")


@dataclass
class Evidence:
    lines: list[tuple[str, str]] = field(default_factory=list)  # (what, text), shown above the messages
    marks: set[str] = field(default_factory=set)  # phrases marked in the candidate's turn
    injected: dict[int, list[str]] = field(default_factory=dict)  # id(tool message) -> injected spans


def _injected_spans(m: Message) -> list[str]:
    """The injected instruction in a tool result, as written there when it can be found (else lowercased)."""
    inj = injection.find(m.content)
    if inj is None:
        return []
    content = m.content or ""
    spans = []
    for part in (p.strip() for p in inj.text.split("\n")):
        at = content.lower().find(part) if part else -1
        spans.append(content[at : at + len(part)] if at >= 0 else part)
    return [s for s in spans if s]


def evidence(behaviour: str, conv: Conversation, turn: list[Message], detail: str) -> Evidence:
    ev = Evidence(marks={a or b for a, b in _QUOTED.findall(detail)} | rules.placeholders(detail))
    if behaviour == "pii_leakage":
        ev.lines.append(("leaked placeholder", ", ".join(sorted(rules.placeholders(detail))) or detail))
    elif behaviour == "injection_following":
        for m in conv.prefix() + turn:
            if m.role == "tool" and (spans := _injected_spans(m)):
                ev.injected[id(m)] = spans
                ev.lines.append(("injected instruction", " … ".join(spans)))
        ev.lines.append(("action that followed", detail))
    elif behaviour == "over_refusal":
        ev.lines.append(("matched phrase", ", ".join(sorted(ev.marks)) or detail))
    elif behaviour in ("harmful_compliance", "self_harm_without_support"):
        user = conv.messages[conv.last_user_index()].content
        ev.lines.append(("request category", rules.disallowed_category(user) or "-"))
        ev.lines.append(("grader", detail))
    else:
        ev.lines.append(("grader", detail))
    return ev


def marked(text: str, marks: Collection[str]) -> str:
    """text escaped for HTML, each occurrence of a mark (case-insensitive) wrapped in <mark>."""
    spans: list[tuple[int, int]] = []
    low = text.lower() if len(text.lower()) == len(text) else text  # offsets must hold
    for m in {m.lower() for m in marks if m.strip()}:
        at = low.find(m)
        while at >= 0:
            spans.append((at, at + len(m)))
            at = low.find(m, at + 1)
    out, pos = [], 0
    for lo, hi in sorted(spans):
        if hi <= pos:
            continue
        lo = max(lo, pos)
        out += [html.escape(text[pos:lo]), "<mark>", html.escape(text[lo:hi]), "</mark>"]
        pos = hi
    return "".join(out) + html.escape(text[pos:])
