"""Per-format conversion of one JSON record into an OpenAI-shaped record.

The result is ``{"id"?, "messages": [...], "tools"?, "metadata"?, "topic"?, "surface"?}``;
validation of the messages themselves (roles, content, tool calls) is ingest's job, so every
format is held to the same rules and the same quarantine reasons.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from deploysim.logs.formats import exports, traces
from deploysim.logs.formats.base import RecordError

# ---------------------------------------------------------------------------- OpenAI


def _system_text(value: Any) -> str | None:
    """A top-level system prompt: text, text blocks (Anthropic) or ``{parts}`` (Gemini)."""
    if isinstance(value, dict):
        value = value.get("parts")
    if isinstance(value, list):
        value = "\n".join(b["text"] for b in value if isinstance(b, dict) and isinstance(b.get("text"), str))
    return value if isinstance(value, str) and value.strip() else None


def from_openai(rec: dict[str, Any]) -> dict[str, Any]:
    """OpenAI chat records; also Anthropic Messages (a top-level ``system``) and Gemini requests
    (``contents``, ``systemInstruction``), whose message shapes ingest reads leniently."""
    messages = rec.get("messages", rec.get("contents"))
    if not isinstance(messages, list):
        raise RecordError("record has no 'messages' list")
    out = {**rec, "messages": messages}
    system = _system_text(rec.get("system", rec.get("systemInstruction", rec.get("system_instruction"))))
    if system and not (messages and isinstance(messages[0], dict) and messages[0].get("role") == "system"):
        out["messages"] = [{"role": "system", "content": system}, *messages]
    if "id" not in rec:  # Hugging Face chat JSONL names its id otherwise
        for key in ("conversation_id", "prompt_id"):
            if isinstance(rec.get(key), (str, int)) and not isinstance(rec.get(key), bool):
                out["id"] = rec[key]
                break
    if isinstance(rec.get("tools"), list):
        out["tools"] = [schema for t in rec["tools"] for schema in _tool_schemas(t)]
    return out


def _tool_schemas(t: Any) -> list[Any]:
    """A tool schema as OpenAI tool schemas: Gemini ``functionDeclarations`` and Anthropic
    ``{name, description, input_schema}`` are converted; others pass unchanged."""
    if isinstance(t, dict) and isinstance(t.get("functionDeclarations"), list):
        return [{"type": "function", "function": fd} for fd in t["functionDeclarations"]]
    if isinstance(t, dict) and "input_schema" in t and "name" in t:
        fn = {"name": t["name"], "description": t.get("description", ""), "parameters": t["input_schema"]}
        return [{"type": "function", "function": fn}]
    return [t]


# ---------------------------------------------------------------------------- ShareGPT

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "function_call",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}


def from_sharegpt(rec: dict[str, Any]) -> dict[str, Any]:
    turns = rec.get("conversations", rec.get("conversation"))
    if not isinstance(turns, list):
        raise RecordError("record has no 'conversations' list")
    if not turns:
        raise RecordError("record has an empty 'conversations' list")
    messages: list[dict[str, Any]] = []
    if isinstance(rec.get("system"), str) and rec["system"].strip():
        messages.append({"role": "system", "content": rec["system"]})
    pending: list[str] = []  # ids of function calls not yet answered
    n_calls = 0
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise RecordError(f"turn {i} is not an object")
        who = t.get("from", t.get("role"))
        if who is None:
            raise RecordError(f"turn {i} has no 'from'")
        role = SHAREGPT_ROLES.get(str(who).lower())
        if role is None:
            raise RecordError(f"turn {i} is from unknown speaker {who!r}")
        value = t.get("value", t.get("content"))
        if value is not None and not isinstance(value, (str, list)):
            raise RecordError(f"turn {i} has a 'value' of type {type(value).__name__} (expected text)")
        if role == "function_call":
            try:
                call = json.loads(value) if isinstance(value, str) else None
            except json.JSONDecodeError:
                call = None
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise RecordError(f"turn {i} is a function_call whose value is not a JSON object with a name")
            n_calls += 1
            cid = f"call_{n_calls}"
            pending.append(cid)
            args = call.get("arguments", {})
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": cid,
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                            },
                        }
                    ],
                }
            )
        elif role == "tool":
            # the observation answers the oldest unanswered call; with none, ingest rejects it
            cid = pending.pop(0) if pending else f"unmatched_{i}"
            messages.append({"role": "tool", "tool_call_id": cid, "content": value})
        else:
            messages.append({"role": role, "content": value})
    out: dict[str, Any] = {"messages": messages}
    tools = rec.get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            raise RecordError("'tools' is text that is not JSON") from None
    if tools:
        out["tools"] = [t if "type" in t else {"type": "function", "function": t} for t in tools if isinstance(t, dict)]
    for key in ("id", "metadata", "topic", "surface"):
        if key in rec:
            out[key] = rec[key]
    return out


# ---------------------------------------------------------------------------- Anthropic transcripts

_TURN_RE = re.compile(r"(?:^|\n\n)(Human|Assistant|H|A):[ \t]?")
TRANSCRIPT_KEYS = ("chosen", "transcript", "text", "prompt")


def parse_transcript(text: str) -> list[dict[str, Any]]:
    """``\\n\\nHuman: ...\\n\\nAssistant: ...`` as OpenAI messages."""
    parts = _TURN_RE.split(text)
    lead = parts[0].strip()
    if len(parts) < 3:
        raise RecordError("transcript has no 'Human:' or 'Assistant:' turns")
    messages = [{"role": "system", "content": lead}] if lead else []
    for speaker, body in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if speaker in ("Human", "H") else "assistant", "content": body.strip()})
    return messages


def from_anthropic(rec: dict[str, Any]) -> dict[str, Any]:
    """One conversation per record: the ``chosen`` transcript of a preference pair (the
    response that shipped), else ``transcript``/``text``/``prompt`` (+ ``completion``)."""
    for key in TRANSCRIPT_KEYS:
        val = rec.get(key)
        if isinstance(val, str):
            if key == "prompt" and isinstance(rec.get("completion"), str):
                val += (
                    rec["completion"]
                    if rec["completion"].startswith(("\n\nAssistant:", " "))
                    else " " + rec["completion"]
                )
            out: dict[str, Any] = {"messages": parse_transcript(val)}
            for k in ("id", "metadata", "topic", "surface"):
                if k in rec:
                    out[k] = rec[k]
            return out
    raise RecordError(f"record has no transcript field ({', '.join(TRANSCRIPT_KEYS)})")


# ---------------------------------------------------------------------------- tau-bench


def from_taubench(rec: dict[str, Any]) -> dict[str, Any]:
    traj = rec.get("traj")
    if not isinstance(traj, list):
        raise RecordError("record has no 'traj' list")
    if not traj:
        raise RecordError("record has an empty 'traj' list")
    out: dict[str, Any] = {"messages": traj, "topic": "agent", "surface": "agent"}
    if rec.get("task_id") is not None:
        out["id"] = f"tau-{rec['task_id']}-{rec.get('trial', 0)}"
    meta: dict[str, Any] = {}
    for k in ("task_id", "trial", "reward"):
        if isinstance(rec.get(k), (int, float, str)) and not isinstance(rec.get(k), bool):
            meta[k] = rec[k]
    task = (rec.get("info") or {}).get("task") if isinstance(rec.get("info"), dict) else None
    if isinstance(task, dict) and isinstance(task.get("user_id"), str):
        meta["user_id"] = task["user_id"]
    out["metadata"] = meta
    if isinstance(rec.get("tools"), list):
        out["tools"] = rec["tools"]
    return out


# ---------------------------------------------------------------------------- project Parquet


def _json_field(row: dict[str, Any], key: str, default: Any) -> Any:
    val = row.get(key)
    if val is None:
        return default
    if isinstance(val, str):
        try:
            return json.loads(val)
        except json.JSONDecodeError:
            raise RecordError(f"column '{key}' holds text that is not JSON") from None
    return val


def from_project_row(row: dict[str, Any]) -> dict[str, Any]:
    messages = _json_field(row, "messages", None)
    if not isinstance(messages, list):
        raise RecordError("row has no 'messages' list")
    out: dict[str, Any] = {
        "messages": messages,
        "tools": _json_field(row, "tools", []),
        "metadata": _json_field(row, "metadata", {}),
    }
    if row.get("conversation_id") is not None:
        out["id"] = row["conversation_id"]
    for key in ("topic", "surface"):
        if row.get(key) is not None:
            out[key] = row[key]
    return out


# a converter returns one record, or a list of records and RecordErrors (one OTLP line holds many spans)
CONVERTERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "openai": from_openai,
    "sharegpt": from_sharegpt,
    "anthropic": from_anthropic,
    "taubench": from_taubench,
    "openai_batch": exports.from_openai_batch,
    "lmsys": exports.from_lmsys,
    "langfuse": traces.from_langfuse,
    "langsmith": traces.from_langsmith,
    "otel": traces.from_otel,
}
