"""Opening, detecting and streaming log files of every supported format."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from deploysim.errors import InputError

FORMATS = (
    "openai",
    "sharegpt",
    "anthropic",
    "taubench",
    "openai_batch",
    "lmsys",
    "langfuse",
    "langsmith",
    "otel",
    "json",
    "mapped",
    "huggingface",
    "parquet",
)
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is quarantined without being held in memory

_GZIP, _ZSTD, _PARQUET = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PAR1"


class FormatError(InputError):
    """A file that cannot be read at all (unknown format, unreadable compression).

    ``reason`` says why without naming the file (for a quarantine entry that names it)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class StreamError(FormatError):
    """A compressed stream that is truncated or corrupt; the lines before it were read."""

    def __init__(self, path: Path, codec: str, truncated: bool, detail: str) -> None:
        self.codec, self.truncated, self.detail = codec, truncated, detail
        super().__init__(f"{path}: {self.describe(None)}")
        self.reason = self.describe(None)

    def describe(self, records: int | None) -> str:
        """The reason, with how many records were read before the fault when known."""
        after = "" if records is None or (records == 0 and not self.truncated) else f" after {records:,} records"
        if self.truncated:
            return f"truncated {self.codec} stream{after} ({self.detail})"
        return f"corrupt {self.codec} stream{after}: {self.detail}"


class RecordError(ValueError):
    """Why one record was quarantined (a sentence a person can act on)."""


@dataclass
class RawRecord:
    """One record of a file: its 1-based line (JSONL) or row (Parquet), and either the
    OpenAI-shaped dict or the reason it is unusable."""

    where: int
    record: dict[str, Any] | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- opening


def _magic(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4)


def compression(path: Path) -> str | None:
    head = _magic(path)
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_ZSTD):
        return "zstd"
    return None


class _ZstdRaw(io.RawIOBase):
    """Decompressed bytes of a zstd file, frame after frame; EOFError when the file ends inside
    a frame (zstandard's stream reader stops there silently)."""

    def __init__(self, path: Path, chunk: int = 1 << 16) -> None:
        import zstandard

        self._zstd, self._fh, self._chunk = zstandard, open(path, "rb"), chunk
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._out, self._in_frame = b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._out:
            data = self._fh.read(self._chunk)
            if not data:
                if self._in_frame:
                    raise EOFError("the file ends inside a zstd frame")
                return 0
            while data:
                self._in_frame = True
                self._out += self._dobj.decompress(data)
                data = b""
                if self._dobj.eof:  # a frame ended; what follows starts the next one
                    data, self._in_frame = self._dobj.unused_data, False
                    self._dobj = self._zstd.ZstdDecompressor().decompressobj()
        n = min(len(buf), len(self._out))
        buf[:n], self._out = self._out[:n], self._out[n:]
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def open_binary(path: Path) -> BinaryIO:
    """The decompressed byte stream of a plain, gzip or zstd file (chosen by magic bytes)."""
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "zstd":
        return io.BufferedReader(_ZstdRaw(path), buffer_size=1 << 20)
    return open(path, "rb")


def _stream_error(path: Path, e: BaseException) -> FormatError:
    detail = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__
    codec = compression(path)
    if codec is None:
        return FormatError(f"cannot read {path}: {detail}", reason=f"cannot read file: {detail}")
    return StreamError(path, codec, isinstance(e, EOFError), detail)


def iter_lines(
    path: Path, on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, raw bytes or None, error or None) for every line, with bounded memory.

    A line longer than MAX_LINE_BYTES is skipped (its bytes are never held whole) and
    reported; a truncated or corrupt compressed stream raises StreamError after the lines
    read before it.
    """
    no = 0
    with open_binary(path) as fh:
        try:
            while True:
                line = fh.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return
                no += 1
                if on_bytes:
                    on_bytes(len(line))
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    size = len(line)
                    while chunk := fh.readline(MAX_LINE_BYTES):  # skip the rest of the line
                        size += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                        if chunk.endswith(b"\n"):
                            break
                    yield no, None, f"line is {size / 1e6:.0f} MB, longer than the {MAX_LINE_BYTES // 2**20} MB limit"
                    continue
                yield no, line, None
        except (EOFError, OSError, zlib.error) as e:
            raise _stream_error(path, e) from None
        except Exception as e:  # zstandard.ZstdError and friends
            if type(e).__module__.startswith("zstandard") or "zstd" in type(e).__name__.lower():
                raise _stream_error(path, e) from None
            raise


def decode_line(raw: bytes, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"line is not valid UTF-8 (byte {raw[e.start]:#04x} at col {e.start + 1})") from None


def load_json_object(line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise RecordError(f"line is not valid JSON: {e.msg} (col {e.colno})") from None
    except RecursionError:
        raise RecordError("line is JSON nested too deeply to read") from None
    if not isinstance(rec, dict):
        raise RecordError(f"record is a JSON {type(rec).__name__}, not an object")
    return rec


# ---------------------------------------------------------------------------- detection


def format_of_record(rec: dict[str, Any]) -> str | None:
    """The format a JSON object looks like, or None. Exports are recognised by their own keys
    first, so that a record holding ``messages`` inside them is not taken for plain OpenAI."""
    if isinstance(rec.get("resourceSpans"), list):
        return "otel"
    if isinstance(rec.get("custom_id"), str) and ("body" in rec or "response" in rec):
        return "openai_batch"
    if rec.get("object") == "chat.completion" and isinstance(rec.get("choices"), list):
        return "openai_batch"
    if "run_type" in rec and ("inputs" in rec or "outputs" in rec):
        return "langsmith"
    if isinstance(rec.get("observations"), list) or ("traceId" in rec and rec.get("type") in _LANGFUSE_TYPES):
        return "langfuse"
    if isinstance(rec.get("messages"), list) or isinstance(rec.get("contents"), list):
        return "openai"
    if isinstance(rec.get("traj"), list):
        return "taubench"
    turns = rec.get("conversation")
    if (
        isinstance(turns, list)
        and turns
        and isinstance(turns[0], dict)
        and "role" in turns[0]
        and "from" not in turns[0]
    ):
        return "lmsys"
    if isinstance(rec.get("conversations"), list) or isinstance(turns, list):
        return "sharegpt"
    for key in ("chosen", "transcript", "text", "prompt"):
        val = rec.get(key)
        if isinstance(val, str) and "Human:" in val:
            return "anthropic"
    if "input" in rec and "output" in rec and any(k in rec for k in ("sessionId", "userId", "projectId", "htmlPath")):
        return "langfuse"
    return None


_OPENING_BYTES = 4096  # a JSON document's first line is short; a broken JSONL record is not read whole
_LANGFUSE_TYPES = ("GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EMBEDDING")


def _first_byte(path: Path) -> bytes:
    """The first non-whitespace byte of the (decompressed) file, or b""."""
    with open_binary(path) as fh:
        while chunk := fh.read(4096):
            stripped = chunk.lstrip().lstrip(b"\xef\xbb\xbf").lstrip()
            if stripped:
                return stripped[:1]
    return b""


def _document(path: Path) -> Any:
    """The whole file as one JSON value, or None when it is not one (JSON lines, broken, too big)."""
    from deploysim.logs.formats.documents import load_document

    try:
        return load_document(path)
    except Exception:  # not JSON, or a broken stream (reading reports it)
        return None


def _document_format(path: Path, doc: Any, fields: Any, sample: int) -> str:
    """ "json" for a document whose records are logs; FormatError saying why it is not one."""
    from deploysim.logs.formats.documents import select_records

    if fields is not None and fields.maps_messages:
        return "json"
    try:
        records = select_records(doc, None)
    except FormatError as e:
        raise FormatError(f"{path}: {e.reason}", reason=e.reason) from None
    objects = [r for r in records[:sample] if isinstance(r, dict)]
    if any(format_of_record(r) for r in objects):
        return "json"
    keys = ", ".join(sorted(objects[0])) if objects else "none"
    why = (
        f"not a log file: a JSON document whose records look like no known format (keys of the first: {keys}); "
        "give --messages-field (and --role-field, --content-field) for another layout"
    )
    raise FormatError(f"{path}: {why}", reason=why)


def _parquet_kind(path: Path) -> str:
    """ "parquet" (the project's schema, or a file too broken to tell) or "huggingface"."""
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception:  # pyarrow's errors; reading reports them
        return "parquet"
    return "parquet" if "conversation_id" in names or not names & {"messages", "conversations"} else "huggingface"


def detect_format(path: Path, sample_lines: int = 50, fields: Any = None) -> str:
    """The format of a file from its first bytes (Parquet), its shape (a JSON document) or its
    first JSON objects. ``fields`` (a documents.FieldMap) asks for a JSON document (records_path)
    or for mapped records (messages/role/content fields).

    Raises FormatError (with a ``reason``) for an empty file, a file of no known format and
    a compressed stream broken before any record could be recognised."""
    from deploysim.logs.formats.documents import holds_records

    path = Path(path)
    try:
        head = _magic(path)
        size = path.stat().st_size
    except OSError as e:
        raise FormatError(
            f"cannot open {path}: {e.strerror or e}", reason=f"cannot open file: {e.strerror or e}"
        ) from None
    if size == 0:
        raise FormatError(f"cannot detect the format of {path}: it is an empty file", reason="empty file")
    if head == _PARQUET:
        return _parquet_kind(path)
    if fields is not None and fields.records_path:
        return "json"
    try:
        first = _first_byte(path)
    except Exception:  # a broken stream: reading the lines reports it
        first = b""
    doc = _document(path) if first == b"[" else None
    if isinstance(doc, list):
        return _document_format(path, doc, fields, sample_lines)
    seen = 0
    try:
        for no, raw, err in iter_lines(path):
            if err or raw is None or not raw.strip():
                continue
            seen += 1
            try:
                rec = load_json_object(decode_line(raw, no == 1))
            except RecordError:
                opening = seen == 1 and first == b"{" and len(raw) < _OPENING_BYTES  # a short first line
                doc = _document(path) if opening else None
                if isinstance(doc, dict):  # a JSON document over several lines
                    return _document_format(path, doc, fields, sample_lines)
                rec = None
            fmt = format_of_record(rec) if rec is not None else None
            if rec is not None and fields is not None and fields.maps_messages:
                return "mapped"
            if fmt:
                return fmt
            if seen >= sample_lines:
                break
    except StreamError:
        if seen == 0:
            raise
    if seen == 0:
        raise FormatError(f"cannot detect the format of {path}: it has no records", reason="empty file: no records")
    doc = _document(path) if seen == 1 and first == b"{" else None
    if holds_records(doc):  # one object holding a list of records
        return _document_format(path, doc, fields, sample_lines)
    why = (
        f"none of its first {seen} records looks like a known format ({', '.join(FORMATS[:10])}); "
        "pass the format explicitly if it is one of them, or --records-path / --messages-field for another layout"
    )
    raise FormatError(
        f"cannot detect the format of {path}: not a log file: unrecognised format ({why})",
        reason=f"not a log file: unrecognised format ({why})",
    )


# ---------------------------------------------------------------------------- reading


def read_records(
    path: Path, fmt: str | None = None, on_bytes: Callable[[int], None] | None = None, fields: Any = None
) -> Iterator[RawRecord]:
    """Every record of a file as an OpenAI-shaped dict (or an error), streamed (a JSON document
    is read whole). ``fields`` (a documents.FieldMap) maps records of other layouts."""
    from deploysim.logs.formats import documents

    path = Path(path)
    fields = fields or documents.NO_FIELDS
    fmt = fmt or detect_format(path, fields=fields)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt in ("parquet", "huggingface"):
        yield from _parquet_records(path, fmt, on_bytes, fields)
        return
    to_openai = _converter(fmt, fields)
    if fmt == "json":
        yield from documents.document_records(path, fields, to_openai, on_bytes)
        return
    for no, raw, err in iter_lines(path, on_bytes):
        if err is not None:
            yield RawRecord(no, error=err)
            continue
        assert raw is not None
        if not raw.strip():
            continue
        try:
            rec = load_json_object(decode_line(raw, no == 1))
            yield from documents.expand(no, to_openai(rec))
        except RecordError as e:
            yield RawRecord(no, error=str(e))


def _converter(fmt: str, fields: Any) -> Callable[[dict[str, Any]], Any]:
    """How a JSON record of a file of that format becomes OpenAI-shaped (records of a JSON
    document by their own format; with a field mapping, through it)."""
    from deploysim.logs.formats import convert, documents

    if fields.maps_messages or fmt == "mapped":
        return partial(documents.from_mapped, fields=fields)
    if fmt == "json":
        return _by_own_format
    return convert.CONVERTERS[fmt]


def _by_own_format(rec: dict[str, Any]) -> Any:
    """A record of a JSON document, read by the format it looks like."""
    from deploysim.logs.formats import convert

    fmt = format_of_record(rec)
    if fmt is None:
        keys = ", ".join(sorted(rec)) or "none"
        raise RecordError(f"record looks like no known format (keys: {keys}); give --messages-field")
    return convert.CONVERTERS[fmt](rec)


def _parquet_records(path: Path, fmt: str, on_bytes: Callable[[int], None] | None, fields: Any) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    from deploysim.logs.formats import convert, documents, exports

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError
        raise FormatError(f"cannot read {path} as Parquet: {e}", reason=f"corrupt Parquet file: {e}") from None
    names = set(pf.schema_arrow.names)
    to_openai: Callable[[dict[str, Any]], dict[str, Any]]
    if fields.maps_messages:
        to_openai = partial(documents.from_mapped, fields=fields)
    elif fmt == "huggingface":
        to_openai = exports.from_hf_row
    else:
        to_openai = convert.from_project_row
    if not fields.maps_messages and "messages" not in names and (fmt == "parquet" or "conversations" not in names):
        why = f"Parquet without a 'messages' column (columns: {', '.join(sorted(names))})"
        raise FormatError(f"{path} is {why}", reason=f"not a log file: {why}")
    row = 0
    total = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    batches = pf.iter_batches(batch_size=2048)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:  # a damaged row group
            raise FormatError(
                f"cannot read {path} as Parquet after {row} rows: {e}",
                reason=f"corrupt Parquet file after {row:,} records: {e}",
            ) from None
        for rec in batch.to_pylist():
            row += 1
            try:
                yield RawRecord(row, record=to_openai(rec))
            except RecordError as e:
                yield RawRecord(row, error=str(e))
        if on_bytes:
            on_bytes(int(size * batch.num_rows / total))
