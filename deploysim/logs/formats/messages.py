"""Lenient reading of messages: the shapes logs use for the same thing, made OpenAI-shaped.

``normalize(raw, notes)`` returns the messages in the OpenAI shape that ingest validates:

- Gemini ``parts`` (``text``, ``functionCall``, ``functionResponse``; role ``model``)
- Anthropic content blocks (``text``, ``tool_use``, ``tool_result``)
- tool calls as ``{function: {name, arguments}}`` or flat ``{name, arguments | args | input}``,
  with arguments as a JSON string or an object
- tool calls without an id get ``synth_<message>_<k>`` (stable: their place in the record)
- tool results (role ``tool`` or ``function``) without a ``tool_call_id`` answer the oldest
  unanswered call (of the same name when they carry one)
- OpenAI's legacy ``function_call`` / ``function`` messages

Each leniency is counted in ``notes`` under ``lenient:<kind>`` (occurrences). Strict where data
would be lost: a result that answers no call raises RecordError.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from deploysim.logs.formats.base import RecordError

LENIENCIES = {
    "tool_call_id_synthesized": "tool calls without ids (stable ids synthesized)",
    "tool_result_paired_in_order": "tool results without a call id (paired with calls in order)",
    "tool_arguments_object": "tool-call arguments given as objects",
    "function_role_message": "'function' role messages (read as tool results)",
    "empty_content_with_tool_calls": "empty assistant content beside tool calls",
    "content_part_placeholder": "non-text content parts (kept as placeholders)",
    "anthropic_tool_blocks": "Anthropic tool_use/tool_result blocks",
    "gemini_parts": "Gemini parts (functionCall/functionResponse)",
}
SYNTH_PREFIX = "synth_"


def lenient(notes: Counter[str], kind: str, n: int = 1) -> None:
    assert kind in LENIENCIES, kind
    notes[f"lenient:{kind}"] += n


@dataclass
class _Calls:
    """Tool calls not yet answered, in order: (id, name)."""

    pending: list[tuple[str, str]] = field(default_factory=list)

    def answer(self, name: Any) -> str | None:
        """The id of the oldest unanswered call of that name (of any name when name is None)."""
        k = next((k for k, (_, n) in enumerate(self.pending) if name is None or n == name), None)
        return None if k is None else self.pending.pop(k)[0]

    def close(self, call_id: str) -> None:
        self.pending = [(c, n) for c, n in self.pending if c != call_id]


# ---------------------------------------------------------------------------- tool calls


def _args_text(args: Any, notes: Counter[str]) -> Any:
    if args is None:
        return "{}"
    if isinstance(args, str):
        return args
    lenient(notes, "tool_arguments_object")
    return json.dumps(args, ensure_ascii=False, sort_keys=True)


def _call(c: Any, i: int, k: int, notes: Counter[str]) -> Any:
    """One tool call as ``{id, type, function: {name, arguments}}``; shapes ingest cannot read pass unchanged."""
    if not isinstance(c, dict):
        return c
    fn = c.get("function") if "function" in c else (c if "name" in c else None)
    if not isinstance(fn, dict):
        return c
    cid = c.get("id")
    if cid is None or cid == "":
        cid = f"{SYNTH_PREFIX}{i}_{k}"
        lenient(notes, "tool_call_id_synthesized")
    raw_args = next((fn[key] for key in ("arguments", "args", "input") if key in fn), None)
    return {
        "id": cid,
        "type": "function",
        "function": {"name": fn.get("name"), "arguments": _args_text(raw_args, notes)},
    }


# ---------------------------------------------------------------------------- Gemini and Anthropic shapes


def _from_gemini(m: dict[str, Any], i: int, notes: Counter[str]) -> list[dict[str, Any]]:
    """A Gemini ``{role, parts}`` message as OpenAI messages (results first, then the text)."""
    lenient(notes, "gemini_parts")
    role = {"model": "assistant", "function": "tool"}.get(str(m.get("role")), m.get("role"))
    content: list[Any] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for p in m["parts"]:
        if not isinstance(p, dict):
            content.append(p)
        elif isinstance(p.get("functionCall"), dict):
            fc = p["functionCall"]
            calls.append({"id": fc.get("id"), "name": fc.get("name"), "arguments": fc.get("args")})
        elif isinstance(p.get("functionResponse"), dict):
            fr = p["functionResponse"]
            resp = fr.get("response")
            text = resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
            results.append({"role": "tool", "tool_call_id": fr.get("id"), "name": fr.get("name"), "content": text})
        elif isinstance(p.get("text"), str) and not p.get("thought"):
            content.append({"type": "text", "text": p["text"]})
        else:
            data = p.get("inlineData") or p.get("fileData") or {}
            mime = str(data.get("mimeType") or data.get("mime_type") or "") if isinstance(data, dict) else ""
            kind = mime.split("/")[0] if mime.split("/")[0] in ("image", "audio", "video") else "file"
            content.append({"type": "thought" if p.get("thought") else kind})  # kept as a placeholder
    out: list[dict[str, Any]] = list(results)
    if calls or content or not results:
        msg: dict[str, Any] = {"role": role, "content": content or None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _is_anthropic(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in content
    )


def _from_anthropic(m: dict[str, Any]) -> list[dict[str, Any]]:
    """A message with Anthropic ``tool_use``/``tool_result`` blocks as OpenAI messages."""
    content: list[Any] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for b in m["content"]:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "tool_use":
            calls.append({"id": b.get("id"), "name": b.get("name"), "arguments": b.get("input")})
        elif kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": b.get("content")})
        else:
            content.append(b)
    out: list[dict[str, Any]] = list(results)
    if calls or any(_has_text(b) for b in content):
        msg: dict[str, Any] = {"role": m.get("role"), "content": content or None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _has_text(b: Any) -> bool:
    text = b if isinstance(b, str) else b.get("text") if isinstance(b, dict) else None
    return isinstance(text, str) and bool(text.strip())


def _expand(m: dict[str, Any], i: int, notes: Counter[str]) -> list[dict[str, Any]]:
    if isinstance(m.get("parts"), list) and "content" not in m:
        return _from_gemini(m, i, notes)
    if _is_anthropic(m.get("content")):
        lenient(notes, "anthropic_tool_blocks")
        return _from_anthropic(m)
    return [m]


# ---------------------------------------------------------------------------- pairing


def _legacy_call(m: dict[str, Any], i: int) -> dict[str, Any]:
    """An assistant ``function_call`` (OpenAI's legacy API) as a tool call."""
    fc = m["function_call"]
    if m.get("tool_calls"):
        raise RecordError(f"message {i} has both a legacy function_call and tool_calls")
    if not isinstance(fc, dict) or not isinstance(fc.get("name"), str) or not fc["name"]:
        raise RecordError(f"message {i} has a legacy function_call without a function name")
    call = {
        "id": f"call_legacy_{i}",
        "type": "function",
        "function": {"name": fc["name"], "arguments": fc.get("arguments", "{}")},
    }
    return {**m, "tool_calls": [call]}


def _pair(m: dict[str, Any], i: int, calls: _Calls, notes: Counter[str]) -> dict[str, Any]:
    """Tool calls with ids and results with the id of the call they answer."""
    if m.get("function_call") is not None:
        m = _legacy_call(m, i)
    role = m.get("role")
    if role == "function":
        lenient(notes, "function_role_message")
        name = m.get("name")
        call_id = calls.answer(name)
        if call_id is None:
            raise RecordError(f"message {i} is a legacy function result for {name!r} with no earlier function_call")
        return {**m, "role": "tool", "tool_call_id": call_id}
    if role == "tool":
        cid = m.get("tool_call_id")
        if cid is None or cid == "":
            call_id = calls.answer(m.get("name") if isinstance(m.get("name"), str) else None)
            if call_id is not None:
                lenient(notes, "tool_result_paired_in_order")
                return {**m, "tool_call_id": call_id}
        elif isinstance(cid, str):
            calls.close(cid)
        return m
    raw_calls = m.get("tool_calls")
    if isinstance(raw_calls, list) and raw_calls:
        fixed = [_call(c, i, k, notes) for k, c in enumerate(raw_calls, start=1)]
        for c in fixed:
            if isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("function"), dict):
                calls.pending.append((c["id"], c["function"].get("name")))
        if role == "assistant" and not _has_any_text(m.get("content")):
            lenient(notes, "empty_content_with_tool_calls")
        return {**m, "tool_calls": fixed}
    return m


def _has_any_text(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return isinstance(content, list) and any(_has_text(b) for b in content)


def normalize(raw: list[Any], notes: Counter[str]) -> list[Any]:
    """The messages of a record in the OpenAI shape (see the module doc); numbering is 1-based
    over the record's own messages. Items that are not objects pass unchanged for ingest to report."""
    out: list[Any] = []
    calls = _Calls()
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict):
            out.append(m)
            continue
        for msg in _expand(m, i, notes):
            out.append(_pair(msg, i, calls, notes))
    return out
