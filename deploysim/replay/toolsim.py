"""Answering a candidate's tool calls during an agent rollout.

In order of preference, a call is answered
1. from the recorded trajectory, when a logged call has the same name and the same
   canonicalised arguments (source "recorded");
2. by a tool simulator: a model behind the same OpenAI-compatible client, given the
   tool's schema, recorded results of that tool and an excerpt of the original
   trajectory, and asked for a plausible result in the tool's format ("simulated");
3. with a deterministic error result: the tool is not offered in the conversation, or the
   simulator failed ("error"), or no simulator is configured ("unavailable").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from deploysim.schemas import Conversation, ToolCall, ToolResultRecord

if TYPE_CHECKING:  # pragma: no cover
    from deploysim.replay.client import ChatClient

UNAVAILABLE = json.dumps({"error": "tool unavailable in simulation"})
TOOL_SIM_MARKER = "deploysim-tool-simulation"  # same marker the reference endpoint documents
MAX_EXAMPLES = 3
MAX_CHARS = 2000  # per example result / trajectory message in the simulator prompt

SIMULATOR_INSTRUCTIONS = (
    f"[{TOOL_SIM_MARKER}] You simulate a software tool for a replay of a recorded agent conversation. "
    "The user message is a JSON object with the tool's name and schema, the call's arguments, "
    "results this tool returned earlier in the recorded conversation (examples) and an excerpt of "
    "that conversation. Reply with only the result the tool would return for this call: same format "
    "and style as the examples, consistent with the conversation, no commentary."
)


def canonical_args(arguments: Any) -> Any:
    """Arguments for comparison: parsed JSON with nulls dropped and strings stripped, else the raw text."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments.strip()

    def canon(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): canon(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [canon(x) for x in v]
        if isinstance(v, str):
            return v.strip()
        return v

    return canon(arguments)


def _tool_schema(tools: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for t in tools:
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        if isinstance(fn, dict) and fn.get("name") == name:
            return fn
    return None


class ToolResolver:
    """Answers the tool calls of one replayed item (see the module docstring)."""

    def __init__(self, conv: Conversation, user_turn: int, simulator: ChatClient | None = None) -> None:
        self.conv = conv
        self.simulator = simulator
        msgs = conv.messages
        nxt = next((i for i in range(user_turn + 1, len(msgs)) if msgs[i].role == "user"), len(msgs))
        recorded: list[tuple[int, str, str, str]] = []  # (position, name, raw args, result)
        pending: dict[str, tuple[int, ToolCall]] = {}  # a result answers the latest call with its id (ids get reused)
        for pos, m in enumerate(msgs[:nxt]):
            if m.role == "assistant":
                pending.update({c.id: (pos, c) for c in m.tool_calls})
            elif m.role == "tool" and m.tool_call_id in pending:
                cpos, c = pending.pop(m.tool_call_id)
                recorded.append((cpos, c.name, c.arguments, m.content or ""))
        recorded.sort(key=lambda r: r[0])
        # Preference: the logged turn's own calls (in order, each used once first), then the
        # prefix's latest matching call (the most recent state the conversation had seen).
        self._logged = [r for r in recorded if r[0] > user_turn]
        self._prefix = sorted((r for r in recorded if r[0] < user_turn), key=lambda r: -r[0])
        self._all = recorded
        self._used: set[int] = set()
        self._canon: dict[str, Any] = {}  # raw arguments -> canonical, parsed only when a name matches

    def _same(self, r: tuple[int, str, str, str], name: str, args: Any) -> bool:
        if r[1] != name:
            return False
        if r[2] not in self._canon:
            self._canon[r[2]] = canonical_args(r[2])
        return self._canon[r[2]] == args

    def recorded(self, name: str, arguments: str) -> str | None:
        args = canonical_args(arguments)
        logged = [i for i, r in enumerate(self._logged) if self._same(r, name, args)]
        if logged:
            i = next((i for i in logged if i not in self._used), logged[0])
            self._used.add(i)
            return self._logged[i][3]
        return next((r[3] for r in self._prefix if self._same(r, name, args)), None)

    async def answer(self, call: ToolCall) -> ToolResultRecord:
        def result(content: str, source: str, detail: str | None = None) -> ToolResultRecord:
            return ToolResultRecord(
                tool_call_id=call.id,
                name=call.name,
                arguments=call.arguments,
                source=source,
                content=content,
                detail=detail,
            )

        if (content := self.recorded(call.name, call.arguments)) is not None:
            return result(content, "recorded")
        schema = _tool_schema(self.conv.tools, call.name)
        if self.conv.tools and schema is None:
            return result(
                json.dumps({"error": f"unknown tool: {call.name}"}), "error", "tool not offered in the conversation"
            )
        if self.simulator is None:
            return result(UNAVAILABLE, "unavailable", "no recorded result and no tool simulator")
        from deploysim.replay.client import ReplayError

        try:
            res = await self.simulator.complete(self.prompt(call, schema), [])
        except ReplayError as e:
            return result(UNAVAILABLE, "error", f"tool simulator failed: {e.reason}")
        content = res.message.get("content")
        if not isinstance(content, str) or not content.strip() or res.message.get("tool_calls"):
            return result(UNAVAILABLE, "error", "tool simulator gave no result")
        return result(content, "simulated")

    def prompt(self, call: ToolCall, schema: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The simulator's request: deterministic, so it is cached like any other call."""
        examples = [
            {"arguments": _parsed(raw), "result": res[:MAX_CHARS]}
            for _, name, raw, res in self._all
            if name == call.name
        ][-MAX_EXAMPLES:]
        excerpt = [
            {
                "role": m.role,
                **({"content": (m.content or "")[:MAX_CHARS]} if m.content else {}),
                **(
                    {"tool_calls": [{"name": c.name, "arguments": c.arguments} for c in m.tool_calls]}
                    if m.tool_calls
                    else {}
                ),
            }
            for m in self.conv.messages
            if m.role != "system"
        ][-12:]
        request = {
            "tool": call.name,
            "arguments": _parsed(call.arguments),
            "schema": schema or {},
            "examples": examples,
            "trajectory_excerpt": excerpt,
        }
        return [
            {"role": "system", "content": SIMULATOR_INSTRUCTIONS},
            {"role": "user", "content": json.dumps(request, ensure_ascii=False, sort_keys=True)},
        ]


def _parsed(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
