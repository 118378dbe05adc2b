"""Conversions of tracing exports: Langfuse traces and observations, LangSmith runs and
OpenTelemetry GenAI spans (OTLP JSON). Each gives OpenAI-shaped records; ingest validates them."""

from __future__ import annotations

import json
import re
from typing import Any

from deploysim.logs.formats.base import RecordError
from deploysim.logs.formats.exports import _meta, iso_time, obj

# ---------------------------------------------------------------------------- shared


def _as_messages(value: Any) -> list[Any] | None:
    """A list of messages from a trace's input: the list itself, ``{messages: [...]}``, or a prompt text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [{"role": "user", "content": value}] if value.strip() else None
    if isinstance(value, dict):
        value = value.get("messages", value.get("input"))
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and isinstance(value[0], list):
        value = value[0]  # a batch of conversations: the first (LangChain)
    return value if isinstance(value, list) else None


def _as_answer(value: Any) -> dict[str, Any] | None:
    """The assistant message of a trace's output: a message, ``{choices}``, ``{content}`` or text."""
    if isinstance(value, str):
        return {"role": "assistant", "content": value} if value.strip() else None
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("choices"), list) and value["choices"]:
        msg = value["choices"][0].get("message") if isinstance(value["choices"][0], dict) else None
        return msg if isinstance(msg, dict) else None
    if "role" in value or "tool_calls" in value:
        return {"role": "assistant", **value}
    for key in ("content", "output", "text", "completion"):
        if isinstance(value.get(key), str):
            return {"role": "assistant", "content": value[key]}
    return None


def _conversation(messages: list[Any] | None, answer: dict[str, Any] | None, what: str) -> list[Any]:
    if not messages:
        raise RecordError(f"{what} has no input messages")
    return list(messages) + ([answer] if answer else [])


# ---------------------------------------------------------------------------- Langfuse

_GENERATION = "GENERATION"


def _langfuse_generation(obs: dict[str, Any]) -> dict[str, Any]:
    messages = _conversation(_as_messages(obs.get("input")), _as_answer(obs.get("output")), "generation")
    return {"messages": messages, "metadata": _meta(model=obs.get("model"), timestamp=iso_time(obs.get("startTime")))}


def from_langfuse(rec: dict[str, Any]) -> dict[str, Any]:
    """A Langfuse trace (``{id, input, output, userId, sessionId, observations: [...]}``): its last
    generation (whose input holds the whole conversation), else the trace's own input/output; or one
    observation line (``{id, traceId, type: "GENERATION", input, output, model}``)."""
    if "traceId" in rec and rec.get("type") is not None:
        if rec["type"] != _GENERATION:
            raise RecordError(f"Langfuse {rec['type']} observation: only generations hold a conversation")
        out = _langfuse_generation(rec)
    else:
        gens = [
            o
            for o in rec.get("observations") or []
            if isinstance(o, dict) and o.get("type") == _GENERATION and _as_messages(o.get("input"))
        ]
        if gens:
            out = _langfuse_generation(max(gens, key=lambda o: str(o.get("startTime") or "")))
        else:
            messages = _conversation(_as_messages(rec.get("input")), _as_answer(rec.get("output")), "trace")
            out = {"messages": messages, "metadata": {}}
        out["metadata"]["timestamp"] = iso_time(rec.get("timestamp")) or out["metadata"].get("timestamp")
    if isinstance(rec.get("userId"), str):
        out["metadata"]["user_id"] = rec["userId"]
    out["metadata"] = _meta(**out["metadata"])
    if rec.get("id") is not None:
        out["id"] = rec["id"]
    return out


# ---------------------------------------------------------------------------- LangSmith

LC_ROLES = {
    "human": "user",
    "humanmessage": "user",
    "ai": "assistant",
    "aimessage": "assistant",
    "aimessagechunk": "assistant",
    "system": "system",
    "systemmessage": "system",
    "tool": "tool",
    "toolmessage": "tool",
    "function": "function",
    "functionmessage": "function",
}


def lc_message(m: Any) -> Any:
    """A LangChain message (serialised ``{lc, id, kwargs}``, ``{type, data}`` or ``{type, content}``)
    as an OpenAI message; an OpenAI message passes unchanged."""
    if not isinstance(m, dict) or "role" in m:
        return m
    if isinstance(m.get("kwargs"), dict):
        kw, ids = m["kwargs"], m.get("id")
        kind = kw.get("type") or (ids[-1] if isinstance(ids, list) and ids else None)
    elif isinstance(m.get("data"), dict):
        kw, kind = m["data"], m.get("type")
    else:
        kw, kind = m, m.get("type")
    role = LC_ROLES.get(str(kind).lower(), kind)
    out: dict[str, Any] = {"role": role, "content": kw.get("content")}
    calls = kw.get("tool_calls") or (kw.get("additional_kwargs") or {}).get("tool_calls")
    if calls:
        out["tool_calls"] = calls
    for key in ("tool_call_id", "name"):
        if kw.get(key):
            out[key] = kw[key]
    return out


def _langsmith_answer(outputs: Any) -> dict[str, Any] | None:
    if not isinstance(outputs, dict):
        return _as_answer(outputs)
    gens = outputs.get("generations")
    if isinstance(gens, list) and gens:
        first = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
        if isinstance(first, dict):
            if isinstance(first.get("message"), dict):
                return lc_message(first["message"])
            return _as_answer(first.get("text"))
    return _as_answer(outputs)


def from_langsmith(rec: dict[str, Any]) -> dict[str, Any]:
    """A LangSmith run (``{id, name, run_type: "llm", inputs: {messages}, outputs: {generations}}``);
    runs of other types (chain, tool, retriever) are quarantined: the llm runs hold the conversation."""
    if rec.get("run_type") != "llm":
        raise RecordError(f"LangSmith {rec.get('run_type')} run: only llm runs hold a conversation")
    inputs = obj(rec.get("inputs"))
    request = _as_messages(inputs.get("messages")) or _as_messages(inputs.get("prompts") or inputs.get("prompt"))
    messages = _conversation(
        [lc_message(m) for m in request or []], _langsmith_answer(rec.get("outputs")), "LangSmith run"
    )
    extra = obj(rec.get("extra"))
    meta, invocation = obj(extra.get("metadata")), obj(extra.get("invocation_params"))
    out: dict[str, Any] = {
        "messages": messages,
        "metadata": _meta(
            model=meta.get("ls_model_name") or invocation.get("model") or invocation.get("model_name"),
            timestamp=iso_time(rec.get("start_time")),
        ),
    }
    if rec.get("id") is not None:
        out["id"] = rec["id"]
    return out


# ---------------------------------------------------------------------------- OpenTelemetry GenAI (OTLP JSON)

SKIPPED_OPERATIONS = ("execute_tool", "embeddings", "create_agent")  # GenAI spans that hold no conversation


def _value(v: Any) -> Any:
    """An OTLP JSON AnyValue as a Python value."""
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values"))
    return None


def attributes(items: Any) -> dict[str, Any]:
    """OTLP ``[{key, value: AnyValue}]`` as a dict."""
    return {a["key"]: _value(a.get("value")) for a in items or [] if isinstance(a, dict) and "key" in a}


def _json(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _semconv_message(m: Any) -> list[Any]:
    """A GenAI semantic-convention message (``{role, parts: [{type: text | tool_call |
    tool_call_response, ...}]}``) as OpenAI messages."""
    if not isinstance(m, dict) or not isinstance(m.get("parts"), list):
        return [m]
    content: list[Any] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for p in m["parts"]:
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "text":
            content.append({"type": "text", "text": p.get("content")})
        elif kind == "tool_call":
            calls.append({"id": p.get("id"), "name": p.get("name"), "arguments": p.get("arguments")})
        elif kind == "tool_call_response":
            resp = p.get("response", p.get("result"))
            text = resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
            results.append({"role": "tool", "tool_call_id": p.get("id"), "content": text})
        else:
            content.append({"type": str(p.get("modality") or kind) if isinstance(p, dict) else "untyped"})
    out: list[Any] = list(results)
    if calls or content or not results:
        msg: dict[str, Any] = {"role": m.get("role"), "content": content or None}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _from_semconv(attrs: dict[str, Any]) -> list[Any]:
    messages: list[Any] = []
    system = _json(attrs.get("gen_ai.system_instructions"))
    if isinstance(system, list) and system:
        messages.extend(_semconv_message({"role": "system", "parts": system}))
    elif isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        value = _json(attrs.get(key))
        for m in value if isinstance(value, list) else []:
            messages.extend(_semconv_message(m))
    return messages


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
    "gen_ai.choice": "assistant",
}


def _from_events(events: Any) -> list[Any]:
    """Messages from span events: ``gen_ai.<role>.message`` / ``gen_ai.choice`` (attributes content,
    tool_calls, id) or the older ``gen_ai.content.prompt`` / ``gen_ai.content.completion``."""
    messages: list[Any] = []
    for e in events if isinstance(events, list) else []:
        if not isinstance(e, dict):
            continue
        name, a = e.get("name"), attributes(e.get("attributes"))
        if name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            value = _json(a.get("gen_ai.prompt" if name.endswith("prompt") else "gen_ai.completion"))
            messages.extend(value if isinstance(value, list) else [])
        elif name in _EVENT_ROLES:
            body = _json(a.get("message")) if name == "gen_ai.choice" and "message" in a else a
            body = body if isinstance(body, dict) else {"content": body}
            msg: dict[str, Any] = {
                "role": body.get("role") or _EVENT_ROLES[name],
                "content": _json(body.get("content")),
            }
            if body.get("tool_calls"):
                msg["tool_calls"] = _json(body["tool_calls"])
            if name == "gen_ai.tool.message" and body.get("id"):
                msg["tool_call_id"] = body["id"]
            messages.append(msg)
    return messages


_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")


def _from_indexed(attrs: dict[str, Any]) -> list[Any]:
    """OpenLLMetry's flat attributes: ``gen_ai.prompt.<n>.role`` / ``.content`` / ``gen_ai.completion.<n>...``."""
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for key, value in attrs.items():
        m = _INDEXED.match(key)
        if m:
            slot = found.setdefault((0 if m[1] == "prompt" else 1, int(m[2])), {})
            slot[m[3]] = value
    messages = []
    for (_, _), fields in sorted(found.items()):
        msg: dict[str, Any] = {"role": fields.get("role", "assistant"), "content": fields.get("content")}
        calls: dict[int, dict[str, Any]] = {}
        for key, value in fields.items():
            cm = re.match(r"^tool_calls\.(\d+)\.(\w+)$", key)
            if cm:
                calls.setdefault(int(cm[1]), {})[cm[2]] = value
        if calls:
            msg["tool_calls"] = [calls[k] for k in sorted(calls)]
        if fields.get("tool_call_id"):
            msg["tool_call_id"] = fields["tool_call_id"]
        messages.append(msg)
    return messages


def _otel_span(span: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    messages = _from_semconv(attrs) or _from_events(span.get("events")) or _from_indexed(attrs)
    if not messages:
        raise RecordError(
            "GenAI span without captured messages: turn on content capture, e.g. "
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true"
        )
    out: dict[str, Any] = {
        "messages": messages,
        "metadata": _meta(
            model=attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
            timestamp=iso_time(
                int(span["startTimeUnixNano"]) if str(span.get("startTimeUnixNano", "")).isdigit() else None
            ),
        ),
    }
    if span.get("spanId"):
        out["id"] = f"{span.get('traceId', '')}-{span['spanId']}".lstrip("-")
    return out


def _is_genai(span: dict[str, Any], attrs: dict[str, Any]) -> bool:
    if attrs.get("gen_ai.operation.name") in SKIPPED_OPERATIONS:
        return False
    events = span.get("events")
    events = events if isinstance(events, list) else []
    return any(k.startswith("gen_ai.") for k in attrs) or any(
        isinstance(e, dict) and str(e.get("name", "")).startswith("gen_ai.") for e in events
    )


def from_otel(rec: dict[str, Any]) -> list[dict[str, Any] | RecordError]:
    """Every GenAI span of an OTLP JSON export (``{resourceSpans: [{scopeSpans: [{spans}]}]}``, one
    per line as the Collector's file exporter writes) as a record; other spans are left out."""
    out: list[dict[str, Any] | RecordError] = []
    for rs in rec.get("resourceSpans") or []:
        for ss in (rs or {}).get("scopeSpans") or (rs or {}).get("instrumentationLibrarySpans") or []:
            for span in (ss or {}).get("spans") or []:
                if not isinstance(span, dict):
                    continue
                attrs = attributes(span.get("attributes"))
                if not _is_genai(span, attrs):
                    continue
                try:
                    out.append(_otel_span(span, attrs))
                except RecordError as e:
                    out.append(RecordError(f"{e} (span {span.get('name', '')!r}, id {span.get('spanId', '?')})"))
    return out
