"""JSON documents and field mapping: logs in any other layout.

A JSON document (``.json``: a top-level array, or an object holding a list of records) is read
whole; ``records_path`` (``KEY[.KEY]``) says where its list of records is, else the one list of
objects it holds is used. Each record is read by its own detected format, or, with
``messages_field`` (a dotted path inside each record, e.g. ``instance.conversation_a``), as a
list of turns whose role and content are at ``role_field`` / ``content_field`` (defaults: role,
from, speaker / content, value, text). The mapping also applies to JSONL lines (format
``mapped``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from deploysim.errors import InputError
from deploysim.logs.formats.base import FormatError, RawRecord, RecordError, open_binary

ROLE_NAMES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "ai": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "function",
    "observation": "tool",
}
MAX_DOCUMENT_BYTES = 1 << 30  # a JSON document is read whole; JSON lines stream
MESSAGE_KEYS = ("messages", "conversation", "conversations", "turns", "dialogue", "dialog")
ROLE_KEYS = ("role", "from", "speaker", "author")
CONTENT_KEYS = ("content", "value", "text", "message")
RECORD_LIST_KEYS = ("data", "records", "items", "rows", "conversations", "examples", "traces", "runs", "results")
OPTIONS = {  # field -> its command-line flag, for errors
    "records_path": "--records-path",
    "messages_field": "--messages-field",
    "role_field": "--role-field",
    "content_field": "--content-field",
}


@dataclass(frozen=True)
class FieldMap:
    """Where the records and their messages are, for layouts no format knows."""

    records_path: str | None = None
    messages_field: str | None = None
    role_field: str | None = None
    content_field: str | None = None

    def __post_init__(self) -> None:
        for name, flag in OPTIONS.items():
            value = getattr(self, name)
            if value is not None and (not value.strip() or any(not k.strip() for k in value.split("."))):
                raise InputError(f"{flag} {value!r} is not a dotted path of keys (e.g. data.items)")

    @property
    def maps_messages(self) -> bool:
        """Whether records are read with the mapping instead of their detected format."""
        return bool(self.messages_field or self.role_field or self.content_field)

    def describe(self) -> str:
        return ", ".join(f"{OPTIONS[k]} {v}" for k, v in vars(self).items() if v)


NO_FIELDS = FieldMap()


def _keys(obj: Any) -> str:
    return ", ".join(sorted(map(str, obj))) if isinstance(obj, dict) and obj else "none"


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path (list items by number); KeyError saying which key is missing."""
    at: list[str] = []
    for key in path.split("."):
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            where = f"at '{'.'.join(at)}'" if at else "at the top"
            has = f"keys: {_keys(obj)}" if isinstance(obj, dict) else f"a {type(obj).__name__} there"
            raise KeyError(f"no key '{key}' {where} ({has})")
        at.append(key)
    return obj


def _record_lists(doc: dict[str, Any]) -> list[str]:
    return [k for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]


def select_records(doc: Any, records_path: str | None) -> list[Any]:
    """The list of records of a JSON document; FormatError (reason without the file) when there is none."""
    from deploysim.logs.formats.base import format_of_record

    if records_path:
        try:
            found = get_path(doc, records_path)
        except KeyError as e:
            why = f"records path '{records_path}' not found: {e.args[0]}"
            raise FormatError(why, reason=why) from None
        if not isinstance(found, list):
            why = f"records path '{records_path}' holds a JSON {type(found).__name__}, not a list of records"
            raise FormatError(why, reason=why)
        return found
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        why = f"the document is a JSON {type(doc).__name__}, not an array or an object"
        raise FormatError(why, reason=why)
    if format_of_record(doc):
        return [doc]  # one record of a known format
    lists = _record_lists(doc)
    preferred = [k for k in RECORD_LIST_KEYS if k in lists]
    if len(lists) == 1 or preferred:
        return doc[(preferred or lists)[0]]
    why = (
        f"the document holds several lists of objects ({', '.join(lists)}); say which with --records-path"
        if lists
        else f"the document holds no list of records (keys: {_keys(doc)}); say where it is with --records-path"
    )
    raise FormatError(why, reason=why)


def holds_records(doc: Any) -> bool:
    """Whether a JSON value is a document of records (a list, an object holding one, or one record
    of a known format)."""
    from deploysim.logs.formats.base import format_of_record

    return isinstance(doc, list) or (isinstance(doc, dict) and bool(_record_lists(doc) or format_of_record(doc)))


# ---------------------------------------------------------------------------- mapped records


def _pick(turn: dict[str, Any], path: str | None, defaults: tuple[str, ...]) -> Any:
    if path:
        try:
            return get_path(turn, path)
        except KeyError:
            return None
    return next((turn[k] for k in defaults if k in turn), None)


def _turn(t: Any, i: int, fields: FieldMap) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise RecordError(f"turn {i} is not an object")
    role = _pick(t, fields.role_field, ROLE_KEYS)
    if role is None:
        raise RecordError(
            f"turn {i} has no role (no {fields.role_field or ', '.join(ROLE_KEYS)}; turn keys: {_keys(t)})"
        )
    msg = {k: t[k] for k in ("tool_calls", "tool_call_id", "name", "function_call", "parts") if k in t}
    msg["role"] = ROLE_NAMES.get(str(role).lower(), role)
    content = _pick(t, fields.content_field, CONTENT_KEYS)
    if content is not None or "parts" not in t:
        msg["content"] = content
    return msg


def from_mapped(rec: dict[str, Any], fields: FieldMap) -> dict[str, Any]:
    """A record whose turns are at ``fields.messages_field`` (default: the first of MESSAGE_KEYS)."""
    if fields.messages_field:
        try:
            turns = get_path(rec, fields.messages_field)
        except KeyError as e:
            raise RecordError(f"messages field '{fields.messages_field}' not found: {e.args[0]}") from None
    else:
        turns = next((rec[k] for k in MESSAGE_KEYS if isinstance(rec.get(k), list)), None)
        if turns is None:
            raise RecordError(f"record has no list of turns ({', '.join(MESSAGE_KEYS)}; record keys: {_keys(rec)})")
    if not isinstance(turns, list):
        raise RecordError(f"messages field '{fields.messages_field}' holds a {type(turns).__name__}, not a list")
    out: dict[str, Any] = {"messages": [_turn(t, i, fields) for i, t in enumerate(turns, start=1)]}
    for key in ("id", "conversation_id", "question_id"):
        if isinstance(rec.get(key), (str, int)) and not isinstance(rec.get(key), bool):
            out["id"] = rec[key]
            break
    for key in ("metadata", "topic", "surface", "tools"):
        if key in rec:
            out[key] = rec[key]
    return out


# ---------------------------------------------------------------------------- reading a document


def load_document(path: Path, on_bytes: Callable[[int], None] | None = None) -> Any:
    """A whole JSON file (up to MAX_DOCUMENT_BYTES); FormatError when it is not JSON."""
    with open_binary(path) as fh:
        data = fh.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        why = f"JSON document larger than {MAX_DOCUMENT_BYTES >> 20} MB (read whole); write it as JSON lines"
        raise FormatError(f"{path}: {why}", reason=why)
    if on_bytes:
        on_bytes(len(data))
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        why = f"not valid UTF-8 (byte {e.start:,})"
    except json.JSONDecodeError as e:
        why = f"not valid JSON: {e.msg} (line {e.lineno}, col {e.colno})"
    except RecursionError:
        why = "JSON nested too deeply to read"
    raise FormatError(f"{path}: {why}", reason=why)


def document_records(
    path: Path,
    fields: FieldMap,
    convert: Callable[[dict[str, Any]], Any],
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[RawRecord]:
    """The records of a JSON document, numbered by their place in its list (1-based)."""
    try:
        records = select_records(load_document(path, on_bytes), fields.records_path)
    except FormatError as e:
        raise FormatError(f"{path}: {e.reason}", reason=e.reason) from None
    for k, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            yield RawRecord(k, error=f"record {k} is a JSON {type(rec).__name__}, not an object")
            continue
        try:
            yield from expand(k, convert(rec))
        except RecordError as e:
            yield RawRecord(k, error=str(e))


def expand(where: int, converted: Any) -> Iterator[RawRecord]:
    """A converter's result (one record, or a list of records and errors) as RawRecords."""
    for item in converted if isinstance(converted, list) else [converted]:
        if isinstance(item, RecordError):
            yield RawRecord(where, error=str(item))
        else:
            yield RawRecord(where, record=item)
