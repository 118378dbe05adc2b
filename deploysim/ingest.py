"""Read OpenAI-format chat JSONL into validated Conversations.

One record per line: {"messages": [...], "tools"?, "id"?, "topic"?, "surface"?, "metadata"?}.
A line that cannot be used becomes a QuarantineRecord with a reason a person can act
on; it never stops the run. Files are streamed line by line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import ValidationError

from deploysim.schemas import Conversation, Message, QuarantineRecord, ToolCall

ROLES = ("system", "user", "assistant", "tool")
TEXT_PART_TYPES = ("text", "input_text", "output_text")


class IngestError(Exception):
    """An input that cannot be read at all (missing, empty directory, not text)."""


class RecordError(ValueError):
    """Why one line was quarantined."""


@dataclass
class IngestResult:
    conversations: list[Conversation] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    n_read: int = 0  # records read = accepted + quarantined (blank lines are not records)


# ---------------------------------------------------------------------------- files


def input_files(paths: Iterable[Path]) -> list[Path]:
    """The JSONL files named by paths (a directory means every *.jsonl inside, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.jsonl") if f.is_file())
            if not found:
                raise IngestError(f"no .jsonl files in directory {p}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():
            raise IngestError(f"cannot read {p}: not a regular file or directory")
        else:
            raise IngestError(f"input file not found: {p}")
    unique: dict[Path, Path] = {}  # the same file named twice is read once
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of a file, one line at a time."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise IngestError(f"cannot open {path}: {e.strerror or e}") from None
    with fh:
        head = fh.read(4096)
        if head.startswith(b"\x1f\x8b"):
            raise IngestError(f"cannot read {path}: it is gzip-compressed; decompress it first")
        if b"\x00" in head:
            raise IngestError(f"cannot read {path}: it is binary, not UTF-8 JSON lines")
        fh.seek(0)
        for no, raw in enumerate(fh, start=1):
            yield no, raw


# ---------------------------------------------------------------------------- records


def _content_text(content: Any, where: str) -> str | None:
    """Message content as text; a list of parts keeps its text parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in TEXT_PART_TYPES and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    raise RecordError(f"{where} has content of type {type(content).__name__} (expected text or a list of parts)")


def _tool_calls(raw: Any, where: str) -> list[ToolCall]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RecordError(f"{where} has 'tool_calls' that is not a list")
    calls = []
    for j, c in enumerate(raw, start=1):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict):
            raise RecordError(f"{where} tool call {j} has no 'function' object")
        if not isinstance(c.get("id"), str) or not c["id"]:
            raise RecordError(f"{where} tool call {j} has no id")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RecordError(f"{where} tool call {j} has no function name")
        args = fn.get("arguments", "{}")
        if args is None:
            args = "{}"
        elif not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False, sort_keys=True)
        calls.append(ToolCall(id=c["id"], name=fn["name"], arguments=args))
    return calls


def _messages(raw: list[Any]) -> list[Message]:
    """Validated messages; numbering in reasons is 1-based."""
    out: list[Message] = []
    call_names: dict[str, str] = {}  # tool_call_id -> tool name, from earlier assistant turns
    for i, m in enumerate(raw, start=1):
        where = f"message {i}"
        if not isinstance(m, dict):
            raise RecordError(f"{where} is not an object")
        role = m.get("role")
        if role is None:
            raise RecordError(f"{where} has no role")
        if role not in ROLES:
            raise RecordError(f"{where} has unknown role {role!r}")
        content = _content_text(m.get("content"), where)
        calls = _tool_calls(m.get("tool_calls"), where)
        if calls and role != "assistant":
            raise RecordError(f"{where} ({role}) has tool_calls; only assistant messages may")
        if role in ("system", "user") and not (content or "").strip():
            raise RecordError(f"{where} has empty content")
        if role == "assistant" and not calls and not (content or "").strip():
            raise RecordError(f"{where} has empty content")
        tool_call_id, name = None, None
        if role == "tool":
            tool_call_id = m.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise RecordError(f"tool message {i} has no tool_call_id")
            if tool_call_id not in call_names:
                raise RecordError(f"tool message {i} answers unknown tool_call_id {tool_call_id!r}")
            name = m.get("name") if isinstance(m.get("name"), str) else call_names[tool_call_id]
            content = content or ""  # an empty tool result is a valid result
        for c in calls:
            call_names[c.id] = c.name
        out.append(Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id, name=name))
    return out


def content_id(messages: list[Message], tools: list[dict[str, Any]]) -> str:
    """Stable id of a conversation without one: sha256 of its content, first 16 hex."""
    blob = json.dumps({"messages": [m.model_dump() for m in messages], "tools": tools}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def parse_record(line: str) -> Conversation:
    """One JSONL line as a Conversation; raises RecordError with the reason."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise RecordError(f"line is not valid JSON: {e.msg} (col {e.colno})") from None
    if not isinstance(rec, dict):
        raise RecordError(f"record is a JSON {type(rec).__name__}, not an object")
    raw_msgs = rec.get("messages")
    if not isinstance(raw_msgs, list):
        raise RecordError("record has no 'messages' list")
    if not raw_msgs:
        raise RecordError("record has an empty 'messages' list")
    messages = _messages(raw_msgs)
    if not any(m.role == "user" for m in messages):
        raise RecordError("conversation has no user message")
    tools = rec.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise RecordError("'tools' must be a list of tool schema objects")
    metadata = rec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RecordError("'metadata' must be an object")
    cid = rec.get("id")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, (str, int)) or not str(cid).strip()):
        raise RecordError("'id' must be a non-empty string")
    fields: dict[str, Any] = {}
    for key in ("topic", "surface"):
        val = rec.get(key)
        if val is not None:
            if not isinstance(val, str) or not val.strip():
                raise RecordError(f"'{key}' must be a non-empty string")
            fields[key] = val.strip()
    try:
        return Conversation(
            conversation_id=str(cid) if cid is not None else content_id(messages, tools),
            messages=messages,
            tools=tools,
            metadata=metadata,
            **fields,
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise RecordError(f"invalid record: {err.get('msg', e)}") from None


# ---------------------------------------------------------------------------- entry point


def ingest_files(paths: list[Path]) -> IngestResult:
    """Read every record of the given files/directories; bad lines go to quarantine."""
    result = IngestResult()
    first_seen: dict[str, str] = {}  # conversation id -> "file:line"
    for path in input_files(paths):
        for no, raw in _lines(path):
            if not raw.strip():
                continue
            result.n_read += 1
            try:
                try:
                    line = raw.decode("utf-8-sig" if no == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise RecordError(f"line is not valid UTF-8 (byte {raw[e.start]:#04x} at col {e.start + 1})") from None
                conv = parse_record(line)
                if conv.conversation_id in first_seen:
                    raise RecordError(f"duplicate conversation id {conv.conversation_id!r} (first seen at {first_seen[conv.conversation_id]})")
            except RecordError as e:
                result.quarantine.append(QuarantineRecord(source_file=str(path), line=no, reason=str(e)))
                continue
            first_seen[conv.conversation_id] = f"{path}:{no}"
            result.conversations.append(conv)
    return result
