"""Conversions of exported datasets: OpenAI Batch API and stored chat completions, LMSYS-Chat-1M /
WildChat, and Hugging Face chat datasets. Each returns an OpenAI-shaped record (ingest validates
the messages)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from deploysim.logs.formats.base import RecordError


def iso_time(value: Any) -> str | None:
    """A timestamp as ISO 8601 text: Unix seconds (or nanoseconds) or text kept as is."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        secs = value / 1e9 if value > 1e14 else value
        return datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def obj(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _meta(**items: Any) -> dict[str, Any]:
    return {k: v for k, v in items.items() if v is not None and v != ""}


# ---------------------------------------------------------------------------- OpenAI Batch API


def _choice_message(completion: dict[str, Any]) -> dict[str, Any] | None:
    choices = completion.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        msg = choices[0].get("message")
        return msg if isinstance(msg, dict) else None
    return None


def from_openai_batch(rec: dict[str, Any]) -> dict[str, Any]:
    """A Batch API input line (``{custom_id, method, url, body: {model, messages}}``), an output
    line (``{custom_id, response: {status_code, body: <chat.completion>}, error}``) holding the
    request too, or a stored chat completion (``{object: "chat.completion", messages?, choices}``).

    An output line holds only the answer: ingest joins it to its request (deploysim.logs.batch);
    read here (a file mixing both kinds, a forced layout) it is quarantined, saying so."""
    body, response = obj(rec.get("body")), obj(rec.get("response"))
    completion: dict[str, Any] | None = obj(response.get("body")) or None
    if completion is None and isinstance(rec.get("choices"), list):
        completion = rec
    request = next(
        (m for m in (body.get("messages"), rec.get("messages"), rec.get("input_messages")) if isinstance(m, list)), None
    )
    name = rec.get("custom_id") or rec.get("id")
    if request is None:
        if completion is not None or rec.get("error"):
            raise RecordError(
                f"Batch output line {name!r} holds only the response, not the conversation: "
                "ingest the batch input file (or lines holding both the request and the response)"
            )
        raise RecordError("record has no request messages (body.messages)")
    messages = list(request)
    answer = _choice_message(completion) if completion and response.get("status_code", 200) == 200 else None
    if answer is not None:
        messages.append(answer)
    model = (completion or {}).get("model") or body.get("model") or rec.get("model")
    out: dict[str, Any] = {
        "messages": messages,
        "metadata": _meta(model=model, timestamp=iso_time((completion or {}).get("created"))),
    }
    if name is not None:
        out["id"] = name
    tools = body.get("tools") or rec.get("tools")
    if isinstance(tools, list):
        out["tools"] = tools
    return out


# ---------------------------------------------------------------------------- LMSYS-Chat-1M / WildChat


def from_lmsys(rec: dict[str, Any]) -> dict[str, Any]:
    """``{conversation_id | conversation_hash, model, turn, language, conversation: [{role, content}]}``."""
    turns = rec.get("conversation")
    if not isinstance(turns, list) or not turns:
        raise RecordError(
            "record has no 'conversation' list" if not isinstance(turns, list) else "empty 'conversation'"
        )
    messages = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            raise RecordError(f"turn {i} is not an object")
        messages.append({"role": t.get("role"), "content": t.get("content")})
    out: dict[str, Any] = {"messages": messages}
    cid = rec.get("conversation_id") or rec.get("conversation_hash") or rec.get("id")
    if cid is not None:
        out["id"] = cid
    out["metadata"] = _meta(
        model=rec.get("model"),
        turn=rec.get("turn"),
        language=rec.get("language"),
        timestamp=iso_time(rec.get("timestamp") or rec.get("tstamp")),
    )
    return out


# ---------------------------------------------------------------------------- Hugging Face chat datasets

HF_ID_COLUMNS = ("id", "conversation_id", "prompt_id", "uuid")


def from_hf_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of a Hugging Face chat dataset: a ``messages`` column (role/content), or ShareGPT
    ``conversations``; the id from the first of HF_ID_COLUMNS."""
    from deploysim.logs.formats.convert import from_sharegpt

    if isinstance(row.get("messages"), list):
        out: dict[str, Any] = {"messages": row["messages"]}
    elif isinstance(row.get("conversations"), list) or isinstance(row.get("conversation"), list):
        out = from_sharegpt(row)
    else:
        raise RecordError("row has no 'messages' list")
    for key in HF_ID_COLUMNS:
        if isinstance(row.get(key), (str, int)) and not isinstance(row.get(key), bool):
            out["id"] = row[key]
            break
    if isinstance(row.get("tools"), list):
        out["tools"] = row["tools"]
    return out
