"""Opening, detecting and streaming log files of every supported format."""
from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

FORMATS = ("openai", "sharegpt", "anthropic", "taubench", "parquet")
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is quarantined without being held in memory

_GZIP, _ZSTD, _PARQUET = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PAR1"


class FormatError(Exception):
    """A file that cannot be read at all (unknown format, unreadable compression)."""


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


def open_binary(path: Path) -> BinaryIO:
    """The decompressed byte stream of a plain, gzip or zstd file (chosen by magic bytes)."""
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        raw = open(path, "rb")
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)  # type: ignore[arg-type]
    return open(path, "rb")


def _truncation_reason(path: Path, e: BaseException) -> str:
    kind = compression(path) or "file"
    return f"{kind} stream is truncated or corrupt ({type(e).__name__}: {e}); records after this point are lost"


def iter_lines(path: Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, raw bytes or None, error or None) for every line, with bounded memory.

    A line longer than MAX_LINE_BYTES is skipped (its bytes are never held whole) and
    reported; a truncated or corrupt compressed stream ends the file with one error.
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
            yield no + 1, None, _truncation_reason(path, e)
        except Exception as e:  # zstandard.ZstdError and friends
            if type(e).__module__.startswith("zstandard") or "zstd" in type(e).__name__.lower():
                yield no + 1, None, _truncation_reason(path, e)
            else:
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
    """The format a JSON object looks like, or None."""
    if isinstance(rec.get("messages"), list):
        return "openai"
    if isinstance(rec.get("traj"), list):
        return "taubench"
    if isinstance(rec.get("conversations"), list) or isinstance(rec.get("conversation"), list):
        return "sharegpt"
    for key in ("chosen", "transcript", "text", "prompt"):
        val = rec.get(key)
        if isinstance(val, str) and "Human:" in val:
            return "anthropic"
    return None


def detect_format(path: Path, sample_lines: int = 50) -> str:
    """The format of a file from its first bytes (Parquet) or its first JSON objects."""
    path = Path(path)
    try:
        head = _magic(path)
    except OSError as e:
        raise FormatError(f"cannot open {path}: {e.strerror or e}") from None
    if head == _PARQUET:
        return "parquet"
    seen = 0
    try:
        for no, raw, err in iter_lines(path):
            if err or raw is None or not raw.strip():
                continue
            seen += 1
            try:
                fmt = format_of_record(load_json_object(decode_line(raw, no == 1)))
            except RecordError:
                fmt = None
            if fmt:
                return fmt
            if seen >= sample_lines:
                break
    except OSError as e:
        raise FormatError(f"cannot read {path}: {e}") from None
    if seen == 0:
        raise FormatError(f"cannot detect the format of {path}: it has no records")
    raise FormatError(
        f"cannot detect the format of {path}: none of its first {seen} records looks like "
        f"{', '.join(FORMATS[:-1])}; pass the format explicitly"
    )


# ---------------------------------------------------------------------------- reading


def read_records(path: Path, fmt: str | None = None, on_bytes: Callable[[int], None] | None = None) -> Iterator[RawRecord]:
    """Every record of a file as an OpenAI-shaped dict (or an error), streamed."""
    from deploysim.formats import convert

    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        yield from _parquet_records(path, on_bytes)
        return
    to_openai = convert.CONVERTERS[fmt]
    for no, raw, err in iter_lines(path, on_bytes):
        if err is not None:
            yield RawRecord(no, error=err)
            continue
        assert raw is not None
        if not raw.strip():
            continue
        try:
            rec = load_json_object(decode_line(raw, no == 1))
            yield RawRecord(no, record=to_openai(rec))
        except RecordError as e:
            yield RawRecord(no, error=str(e))


def _parquet_records(path: Path, on_bytes: Callable[[int], None] | None) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    from deploysim.formats import convert

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError
        raise FormatError(f"cannot read {path} as Parquet: {e}") from None
    names = set(pf.schema_arrow.names)
    if "messages" not in names:
        raise FormatError(f"{path} is Parquet without a 'messages' column (columns: {', '.join(sorted(names))})")
    row = 0
    total = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    for batch in pf.iter_batches(batch_size=2048):
        for rec in batch.to_pylist():
            row += 1
            try:
                yield RawRecord(row, record=convert.from_project_row(rec))
            except RecordError as e:
                yield RawRecord(row, error=str(e))
        if on_bytes:
            on_bytes(int(size * batch.num_rows / total))
