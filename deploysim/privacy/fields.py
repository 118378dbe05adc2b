"""The text fields of a record and the fixed order in which redaction walks them.

``conversation_fields`` lists them and ``map_fields`` rebuilds a conversation from new values:
message contents and tool-call arguments, every string and key inside the tool schemas (keys and
structure kept), topic, surface and the metadata keys kept by DEPLOYSIM_METADATA_ALLOW. Ids and
names (conversation id, tool-call ids, tool names, a message's ``name``, JSON keys) are fields of
kind "id": when they hold personal data, they are replaced whole by a keyed pseudonym
``redacted_<16 hex>`` (deploysim.privacy.policies.hash_identifier), equal wherever the same value
occurs.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Sequence

from deploysim.privacy.policies import DEFAULT_METADATA_ALLOW
from deploysim.schemas import Conversation, Message, ToolCall

_TOOL_NAME_PATH_RE = re.compile(r"tools\[\d+\](?:\.function)?\.name")
_VALUE_KEYS = ("default", "enum", "examples", "example", "const")  # a schema value: its property names it


class Field(NamedTuple):
    """One text field of a conversation. ``kind`` "text": values replaced in place by placeholders;
    "id": the whole value replaced by hash_identifier when it holds personal data (ids, tool names,
    JSON keys). ``label`` names the field in counts (None for message contents and call arguments)."""

    path: str  # "messages[2].content", "tools[0].function.description", "topic"
    kind: str = "text"
    ner: bool | None = None  # None: when the text reads like prose with a capital (ner_worthy)
    label: str | None = None
    key: str | None = None  # the JSON key that names the value ("first_name"), for personal-key context


def ner_worthy(text: str) -> bool:
    """Whether a text field of no fixed kind (a tool schema, topic, metadata) reads like prose with a
    capital, so that NER runs on it."""
    return any(c.isspace() for c in text) and any(c.isupper() for c in text)


def _map_json(value: Any, path: str, label: str, fn, key: str | None = None) -> Any:
    """A JSON value with fn(Field, text) applied to every string and dict key, in a fixed order."""
    if isinstance(value, str):
        kind = "id" if _TOOL_NAME_PATH_RE.fullmatch(path) else "text"
        return fn(Field(path, kind, None if kind == "text" else False, label, key), value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            new_key = fn(Field(f"{path}.<key>", "id", False, label), k) if isinstance(k, str) else k
            out[new_key] = _map_json(v, f"{path}.{k}", label, fn, key if k in _VALUE_KEYS else k)
        return out
    if isinstance(value, list):
        return [_map_json(v, f"{path}[{i}]", label, fn, key) for i, v in enumerate(value)]
    return value


def map_fields(
    conv: Conversation, allow: Sequence[str], fn, tools: list | None = None, build: bool = True
) -> dict[str, Any]:
    """fn(Field, text) applied to every text field of conv, always in the same order (a first call
    collects the texts, a second one puts the redacted texts back). Returns the fields for
    model_copy, plus "metadata_extra": the allowed metadata keys holding text. ``tools`` given:
    used as they are, fn is not applied to them; ``build`` False: no messages are built (collecting)."""
    messages = []
    for i, m in enumerate(conv.messages):
        p = f"messages[{i}]"
        content = fn(Field(f"{p}.content", ner=True), m.content)
        calls = []
        for j, c in enumerate(m.tool_calls):
            q = f"{p}.tool_calls[{j}]"
            args = fn(Field(f"{q}.arguments", ner=True), c.arguments)
            cid = fn(Field(f"{q}.id", "id", False, "tool_calls.id"), c.id)
            name = fn(Field(f"{q}.name", "id", False, "tool_calls.name"), c.name)
            if build:
                calls.append(ToolCall(id=cid, name=name, arguments=args or c.arguments))
        tool_call_id = fn(Field(f"{p}.tool_call_id", "id", False, "messages.tool_call_id"), m.tool_call_id)
        name = fn(Field(f"{p}.name", "id", False, "messages.name"), m.name)
        if build:
            messages.append(
                Message(role=m.role, content=content, tool_calls=calls, tool_call_id=tool_call_id, name=name)
            )
    if tools is None:
        tools = [_map_json(t, f"tools[{k}]", "tools", fn) for k, t in enumerate(conv.tools)]
    extra = {}
    for key in allow:
        val = conv.metadata.get(key)
        if key not in ("timestamp", "user_id") and isinstance(val, (str, dict, list)):
            extra[key] = _map_json(val, f"metadata.{key}", f"metadata.{key}", fn, key)
    return {
        "conversation_id": fn(Field("conversation_id", "id", False, "conversation_id"), conv.conversation_id),
        "topic": fn(Field("topic", label="topic"), conv.topic),
        "surface": fn(Field("surface", label="surface"), conv.surface),
        "messages": messages,
        "tools": tools,
        "metadata_extra": extra,
    }


def conversation_fields(
    conv: Conversation, allow: Sequence[str] = DEFAULT_METADATA_ALLOW
) -> list[tuple[Field, str | None]]:
    """Every text field of a conversation with its text, in redaction order."""
    out: list[tuple[Field, str | None]] = []

    def collect(f: Field, text: Any) -> Any:
        out.append((f, text if isinstance(text, str) else None))
        return text

    map_fields(conv, allow, collect, build=False)
    return out
