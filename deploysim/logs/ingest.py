"""Read production logs of any supported format into validated Conversations, streaming.

Formats are detected per file (or forced): OpenAI chat JSONL, ShareGPT, Anthropic
Human/Assistant transcripts, tau-bench trajectories, OpenAI Batch, LMSYS/WildChat, Hugging
Face Parquet, Langfuse, LangSmith, OpenTelemetry GenAI, JSON documents, any layout through a
FieldMap and the project's own Parquet; plain, gzip or zstd (see deploysim.logs.formats).
Harmless differences (tool calls without ids, Anthropic/Gemini tool shapes, ...) are read
leniently and counted per accepted record (IngestCounts.leniencies). A record that cannot be
used becomes a QuarantineRecord with its file, line (or row) and a reason a person can act on;
it never stops the run. Exact duplicates (same id and same content, or same content without
an id) are dropped and counted. Counts reconcile: read = accepted + quarantined + duplicates.
OpenAI Batch output files are read after the inputs and joined to their requests by
custom_id (deploysim.logs.batch). A file that cannot be read (empty, not a log, corrupt or
truncated compression) is quarantined as a file (line 0) and the other files go on; files of
a directory that are not logs by name are skipped and counted.

Memory does not grow with the input: files are read a line (or a Parquet batch) at a time (a
JSON document whole, up to 1 GB), and the state kept across records, the ids seen for
duplicate detection and the Batch answers, lives in temporary SQLite files.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pydantic import ValidationError

from deploysim.errors import InputError
from deploysim.logs.batch import BatchAnswers, is_output_file
from deploysim.logs.formats import (
    FORMATS,
    FormatError,
    RawRecord,
    RecordError,
    StreamError,
    detect_format,
    read_records,
)
from deploysim.logs.formats.base import decode_line, load_json_object
from deploysim.logs.formats.documents import FieldMap
from deploysim.logs.formats.messages import LENIENCIES, lenient, normalize
from deploysim.schemas import Conversation, Message, QuarantineRecord, ToolCall

ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role
TEXT_PART_TYPES = ("text", "input_text", "output_text")
MEDIA_KINDS = {
    "image_url": "image",
    "input_image": "image",
    "image": "image",
    "input_audio": "audio",
    "audio": "audio",
    "file": "file",
    "input_file": "file",
}  # content part type -> what to call it
LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
COMPRESSED_SUFFIXES = ("", ".gz", ".zst", ".zstd")
MAX_MESSAGE_CHARS = 1_000_000  # default limit of one message (settings: max_message_chars)

# C0/C1 control characters other than tab, newline and carriage return are removed from text
_CONTROL = {c: None for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)]}


class IngestError(InputError):
    """An input that cannot be read at all (missing, empty directory, unknown format)."""


@dataclass
class IngestResult:
    conversations: list[Conversation] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    n_read: int = (
        0  # records read = accepted + quarantined records (line > 0) + duplicates; blank lines are not records
    )
    duplicates: int = 0  # exact duplicate conversations dropped
    formats: dict[str, str] = field(default_factory=dict)  # file -> detected or forced format
    files_quarantined: dict[str, str] = field(default_factory=dict)  # file -> why (its entry in quarantine has line 0)
    files_skipped: dict[str, str] = field(default_factory=dict)  # file of a directory -> why it was not read
    leniencies: Counter[str] = field(default_factory=Counter)  # accepted records read leniently, per kind


@dataclass
class IngestCounts:
    """Running counts of a streamed ingest."""

    n_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    bytes_read: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)  # quarantine reason, numbers stripped
    files: list[str] = field(default_factory=list)  # every file opened
    files_quarantined: dict[str, str] = field(default_factory=dict)  # file -> why it was not (fully) read
    files_skipped: dict[str, str] = field(default_factory=dict)  # file -> why it is not a log file
    batch_answers_joined: int = 0  # OpenAI Batch output lines joined to their requests (not records)
    leniencies: Counter[str] = field(default_factory=Counter)  # accepted records read leniently, per kind
    lenient_items: Counter[str] = field(default_factory=Counter)  # occurrences of each leniency in them

    def add_leniencies(self, found: Counter[str]) -> None:
        for kind, n in found.items():
            if n:
                self.leniencies[kind] += 1
                self.lenient_items[kind] += n

    def leniency_lines(self) -> list[str]:
        """One line per leniency: records, occurrences, what it is."""
        return [
            f"{self.leniencies[k]:>8,} records ({self.lenient_items[k]:,}x)  {LENIENCIES[k]}"
            for k in LENIENCIES
            if self.leniencies[k]
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.n_read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "formats": dict(Counter(self.formats.values())),
            "quarantine_reasons": dict(self.reasons.most_common(10)),
            "files_quarantined": dict(self.files_quarantined),
            "files_skipped": len(self.files_skipped),
            "files_skipped_reasons": dict(Counter(self.files_skipped.values())),
            "leniencies": {k: {"records": self.leniencies[k], "items": self.lenient_items[k]} for k in self.leniencies},
            "batch_answers_joined": self.batch_answers_joined,
        }


Progress = Callable[[IngestCounts, int, int], None]  # counts, files done, files total


# ---------------------------------------------------------------------------- files


def _is_log_file(p: Path) -> bool:
    name = p.name.lower()
    return any(name.endswith(s + c) for s in LOG_SUFFIXES for c in COMPRESSED_SUFFIXES)


def _skip_reason(f: Path, root: Path) -> str | None:
    """Why a file found in a directory is not read, or None for a log file."""
    if any(part.startswith(".") for part in f.relative_to(root).parts):
        return "hidden file"
    if not _is_log_file(f):
        return "not a log file name (expected .jsonl, .ndjson, .json or .parquet; plain, .gz or .zst)"
    return None


def input_files(paths: Iterable[Path | str]) -> list[Path]:
    """The log files named by paths: a file, a directory (every *.jsonl, *.ndjson, *.json, *.parquet,
    plain or .gz/.zst, found recursively and sorted; hidden files left out) or a glob."""
    return scan_inputs(paths)[0]


def scan_inputs(paths: Iterable[Path | str]) -> tuple[list[Path], dict[str, str]]:
    """(the log files named by paths, {file of a directory that was skipped: why})."""
    files: list[Path] = []
    skipped: dict[str, str] = {}
    for p in map(Path, paths):
        s = str(p)
        if not p.exists() and any(c in s for c in "*?["):
            hits = sorted(Path(h) for h in glob(s, recursive=True))
            if not hits:
                raise IngestError(f"no log files match {s!r}")
            more, more_skipped = scan_inputs(hits)
            files.extend(more)
            skipped.update(more_skipped)
        elif p.is_dir():
            found = []
            for f in sorted(f for f in p.rglob("*") if f.is_file()):
                why = _skip_reason(f, p)
                if why is None:
                    found.append(f)
                else:
                    skipped[str(f)] = why
            if not found:
                raise IngestError(
                    f"no log files (.jsonl, .ndjson, .json, .parquet; plain, .gz or .zst) in directory {p}"
                    + (f" ({len(skipped)} other files skipped)" if skipped else "")
                )
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
    return list(unique.values()), skipped


# ---------------------------------------------------------------------------- records


def _clean(text: str, counts: Counter[str]) -> str:
    """Text without control characters (counted) and in Unicode NFC."""
    cleaned = text.translate(_CONTROL)
    if len(cleaned) != len(text):
        counts["control_chars_removed"] += len(text) - len(cleaned)
    return unicodedata.normalize("NFC", cleaned) if not cleaned.isascii() else cleaned


def _part_text(part: Any) -> str | None:
    """The text of a content part, or None for a part that is not text."""
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") in TEXT_PART_TYPES and isinstance(part.get("text"), str):
        return part["text"]
    return None


def _content_text(content: Any, where: str, notes: Counter[str]) -> str | None:
    """Message content as text; a list of parts keeps its text parts and a ``[kind]`` placeholder
    for each other part (counted in ``omitted:<type>``). A list without any text gives "" (nothing
    to replay)."""
    if content is None:
        return None
    if isinstance(content, str):
        return _clean(content, notes)
    if isinstance(content, list):
        texts = []
        for part in content:
            text = _part_text(part)
            if text is None:
                kind = part.get("type", "untyped") if isinstance(part, dict) else type(part).__name__
                notes[f"omitted:{kind}"] += 1
                text = f"[{MEDIA_KINDS.get(str(kind), kind)}]"
            texts.append(text)
        if not any((_part_text(p) or "").strip() for p in content):
            return ""
        others = sum(_part_text(p) is None for p in content)
        if others:
            lenient(notes, "content_part_placeholder", others)
        return _clean("\n".join(texts), notes)
    raise RecordError(f"{where} has content of type {type(content).__name__} (expected text or a list of parts)")


def _tool_calls(raw: Any, where: str) -> list[ToolCall]:
    """OpenAI tool calls ({id, function: {name, arguments}}) or the flat form ({id, name, arguments})."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RecordError(f"{where} has 'tool_calls' that is not a list")
    calls = []
    for j, c in enumerate(raw, start=1):
        if not isinstance(c, dict):
            raise RecordError(f"{where} tool call {j} is not an object")
        fn = c.get("function") if "function" in c else (c if "name" in c else None)
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


def _only_media(kinds: Counter[str]) -> str:
    """'image', 'image and audio' ... for the parts a message had instead of text."""
    names = sorted({MEDIA_KINDS.get(k, k) for k in kinds})
    return " and ".join(names)


def _messages(raw: list[Any], notes: Counter[str], max_chars: int = MAX_MESSAGE_CHARS) -> list[Message]:
    """Validated messages; numbering in reasons is 1-based."""
    out: list[Message] = []
    call_names: dict[str, str] = {}  # tool_call_id -> tool name, from earlier assistant turns
    for i, m in enumerate(normalize(raw, notes), start=1):
        where = f"message {i}"
        if not isinstance(m, dict):
            raise RecordError(f"{where} is not an object")
        role = m.get("role")
        if role is None:
            raise RecordError(f"{where} has no role")
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise RecordError(f"{where} has unknown role {role!r} (expected one of {', '.join(ROLES)})")
        omitted: Counter[str] = Counter()
        content = _content_text(m.get("content"), where, omitted)
        notes.update(omitted)
        if content is not None and len(content) > max_chars:
            raise RecordError(
                f"{where} is {len(content):,} characters long, above the {max_chars:,} limit "
                "(DEPLOYSIM_MAX_MESSAGE_CHARS)"
            )
        calls = _tool_calls(m.get("tool_calls"), where)
        if calls and role != "assistant":
            raise RecordError(f"{where} ({role}) has tool_calls; only assistant messages may")
        empty = not (content or "").strip()
        if empty and role != "tool" and not (role == "assistant" and calls):
            media = Counter({k.split(":", 1)[1]: n for k, n in omitted.items() if k.startswith("omitted:")})
            if media:
                raise RecordError(f"{where} has only {_only_media(media)} content (no text to replay)")
            raise RecordError(f"{where} has empty content")
        tool_call_id, name = None, None
        if role == "tool":
            tool_call_id = m.get("tool_call_id")
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise RecordError(f"tool message {i} has no tool_call_id")
            if tool_call_id not in call_names:
                raise RecordError(
                    f"tool message {i} answers unknown tool_call_id {tool_call_id!r} (no earlier assistant call has it)"
                )
            name = m.get("name") if isinstance(m.get("name"), str) else call_names[tool_call_id]
            content = content or ""  # an empty tool result is a valid result
        for c in calls:
            call_names[c.id] = c.name
        out.append(Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id, name=name))
    return out


def content_id(messages: list[Message], tools: list[dict[str, Any]]) -> str:
    """Stable id of a conversation without one: sha256 of its content, first 16 hex."""
    blob = json.dumps(
        {"messages": [m.model_dump() for m in messages], "tools": tools}, ensure_ascii=False, sort_keys=True
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def to_conversation(
    rec: dict[str, Any],
    tools: list[dict[str, Any]] | None = None,
    max_chars: int = MAX_MESSAGE_CHARS,
    leniencies: Counter[str] | None = None,
) -> Conversation:
    """An OpenAI-shaped record as a validated Conversation; raises RecordError with the reason.

    ``tools`` (e.g. a trajectory set's tool schemas) is used when the record has none.
    ``leniencies`` receives what was read leniently ({kind: occurrences}, see formats.messages)."""
    raw_msgs = rec.get("messages")
    if not isinstance(raw_msgs, list):
        raise RecordError("record has no 'messages' list")
    if not raw_msgs:
        raise RecordError("record has an empty 'messages' list")
    notes: Counter[str] = Counter()
    messages = _messages(raw_msgs, notes, max_chars)
    if not any(m.role == "user" for m in messages):
        raise RecordError("conversation has no user message")
    rec_tools = rec.get("tools") or tools or []
    if not isinstance(rec_tools, list) or not all(isinstance(t, dict) for t in rec_tools):
        raise RecordError("'tools' must be a list of tool schema objects")
    metadata = rec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RecordError("'metadata' must be an object")
    if notes:
        metadata = dict(metadata)
        omitted = {k.split(":", 1)[1]: v for k, v in notes.items() if k.startswith("omitted:")}
        if omitted:
            metadata["omitted_parts"] = omitted
        if notes["control_chars_removed"]:
            metadata["control_chars_removed"] = notes["control_chars_removed"]
        if notes["lenient:tool_call_id_synthesized"]:  # their ids start with SYNTH_PREFIX
            metadata["tool_call_ids_synthesized"] = notes["lenient:tool_call_id_synthesized"]
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
        conv = Conversation(
            conversation_id=str(cid) if cid is not None else content_id(messages, rec_tools),
            messages=messages,
            tools=rec_tools,
            metadata=metadata,
            **fields,
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise RecordError(f"invalid record: {err.get('msg', e)}") from None
    if leniencies is not None:
        leniencies.update({k.split(":", 1)[1]: n for k, n in notes.items() if k.startswith("lenient:")})
    return conv


def parse_record(line: str) -> Conversation:
    """One OpenAI-format JSONL line as a Conversation; raises RecordError with the reason."""
    return to_conversation(load_json_object(line))


# ---------------------------------------------------------------------------- duplicates


class SeenStore:
    """Conversation id -> (content hash, first place seen), on disk so memory stays flat."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="deploysim-seen-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.sqlite", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8000;"
            "CREATE TABLE seen (id TEXT PRIMARY KEY, hash TEXT, place TEXT) WITHOUT ROWID; BEGIN;"
        )
        self._pending = 0

    def check(self, cid: str, digest: str, place: str) -> tuple[str, str] | None:
        """None when cid is new (and records it); else (hash, place) of the first one."""
        row = self._db.execute("SELECT hash, place FROM seen WHERE id = ?", (cid,)).fetchone()
        if row is not None:
            return row
        self._db.execute("INSERT INTO seen VALUES (?, ?, ?)", (cid, digest, place))
        self._pending += 1
        if self._pending >= 50_000:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._pending = 0
        return None

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


# ---------------------------------------------------------------------------- entry points


def _reason_kind(reason: str) -> str:
    """A quarantine reason without its numbers and quoted values, for counting."""
    import re

    return re.sub(r"'[^']*'|\"[^\"]*\"|\d[\d,.]*", "…", reason.split(" (")[0])


def iter_ingest(
    paths: Iterable[Path | str],
    fmt: str | None = None,
    *,
    tools: list[dict[str, Any]] | None = None,
    counts: IngestCounts | None = None,
    progress: Progress | None = None,
    progress_every: float = 2.0,
    max_message_chars: int = MAX_MESSAGE_CHARS,
    fields: FieldMap | None = None,
) -> Iterator[Conversation | QuarantineRecord]:
    """Stream the accepted Conversations and the QuarantineRecords of the given inputs.

    A file that cannot be read, or not to its end, gives one QuarantineRecord with line 0 and
    is counted in ``counts.files_quarantined`` (not in the record counts); the others go on.
    ``fmt`` forces one format for every file (default: detected per file). ``counts`` is
    updated as records go by; ``progress(counts, files_done, files_total)`` is called about
    every ``progress_every`` seconds and once at the end. ``fields`` says where records and
    messages are in layouts no format knows (a JSON document's records path, a messages field,
    role and content fields).
    """
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    files, skipped = scan_inputs(paths)
    counts = counts if counts is not None else IngestCounts()
    counts.files_skipped.update(skipped)
    answers = _batch_answers(files, fmt, fields)
    if answers is not None:  # Batch output files are read after the inputs whose answers they hold
        files = [f for f in files if f not in answers.files] + [f for f in files if f in answers.files]
    seen = SeenStore()
    last = time.monotonic()

    def add_bytes(n: int) -> None:
        counts.bytes_read += n

    try:
        for k, path in enumerate(files):
            counts.files.append(str(path))
            in_file = 0  # records of this file read so far
            try:
                file_fmt = fmt or detect_format(path, fields=fields)
                counts.formats[str(path)] = file_fmt
                if answers is not None and path in answers.files:
                    records: Iterable[RawRecord | None] = answers.read_output(path, add_bytes)
                else:
                    records = read_records(path, file_fmt, on_bytes=add_bytes, fields=fields)
                for raw in records:
                    in_file += 1
                    if raw is None:  # a Batch answer, now part of its request's record
                        counts.batch_answers_joined += 1
                        continue
                    counts.n_read += 1
                    try:
                        if raw.error is not None:
                            raise RecordError(raw.error)
                        rec = raw.record or {}
                        if answers is not None and file_fmt == "openai_batch":
                            rec = answers.attach(rec)
                        found: Counter[str] = Counter()
                        conv = to_conversation(rec, tools, max_message_chars, found)
                        digest = content_id(conv.messages, conv.tools)
                        first = seen.check(conv.conversation_id, digest, f"{path}:{raw.where}")
                        if first is not None:
                            if first[0] == digest:
                                counts.duplicates += 1
                                continue
                            raise RecordError(
                                f"duplicate conversation id {conv.conversation_id!r} with different content "
                                f"(first seen at {first[1]})"
                            )
                    except RecordError as e:
                        counts.quarantined += 1
                        counts.reasons[_reason_kind(str(e))] += 1
                        yield QuarantineRecord(source_file=str(path), line=raw.where, reason=str(e))
                    else:
                        counts.accepted += 1
                        counts.add_leniencies(found)
                        yield conv
                    if progress and time.monotonic() - last >= progress_every:
                        last = time.monotonic()
                        progress(counts, k, len(files))
                if in_file == 0:
                    raise FormatError(f"{path} has no records", reason="empty file: no records")
            except FormatError as e:
                reason = e.describe(in_file) if isinstance(e, StreamError) else e.reason
                counts.files_quarantined[str(path)] = reason
                yield QuarantineRecord(source_file=str(path), line=0, reason=reason)
            except OSError as e:
                reason = f"cannot read file: {e.strerror or e}"
                counts.files_quarantined[str(path)] = reason
                yield QuarantineRecord(source_file=str(path), line=0, reason=reason)
        if progress:
            progress(counts, len(files), len(files))
    finally:
        seen.close()
        if answers is not None:
            answers.close()


def _batch_answers(files: list[Path], fmt: str | None, fields: FieldMap | None) -> BatchAnswers | None:
    """The answers of the OpenAI Batch output files among the inputs, or None when there are none."""
    if fmt not in (None, "openai_batch") or (fields is not None and (fields.maps_messages or fields.records_path)):
        return None
    lines = [f for f in files if not f.name.lower().endswith((".parquet", ".json"))]  # JSON lines only
    outputs = [f for f in lines if is_output_file(f)]
    return BatchAnswers(outputs) if outputs else None


def ingest_files(
    paths: list[Path],
    fmt: str | None = None,
    *,
    tools: list[dict[str, Any]] | None = None,
    progress: Progress | None = None,
    fields: FieldMap | None = None,
) -> IngestResult:
    """Read every record of the given files/directories/globs into memory; bad records go to
    quarantine. For inputs too large for memory, use iter_ingest."""
    counts = IngestCounts()
    result = IngestResult()
    for item in iter_ingest(paths, fmt, tools=tools, counts=counts, progress=progress, fields=fields):
        if isinstance(item, Conversation):
            result.conversations.append(item)
        else:
            result.quarantine.append(item)
    result.n_read, result.duplicates, result.formats = counts.n_read, counts.duplicates, counts.formats
    result.files_quarantined, result.files_skipped = counts.files_quarantined, counts.files_skipped
    result.leniencies = counts.leniencies
    return result


def load_tools(path: Path | str) -> list[dict[str, Any]]:
    """Tool schemas from a JSON file (a list of OpenAI tool objects)."""
    try:
        tools = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise IngestError(f"cannot read tool schemas from {path}: {e}") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise IngestError(f"{path} must hold a JSON list of tool schema objects")
    return tools


__all__ = [
    "IngestError",
    "IngestResult",
    "IngestCounts",
    "RecordError",
    "ingest_files",
    "iter_ingest",
    "input_files",
    "scan_inputs",
    "parse_record",
    "to_conversation",
    "content_id",
    "load_tools",
    "decode_line",
]
