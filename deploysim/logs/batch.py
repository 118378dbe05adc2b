"""OpenAI Batch API output files joined to their input files by ``custom_id``.

A Batch output line holds only the answer; its conversation is the request line of the same
``custom_id`` in the input file. When both files are given, the answers are kept in a temporary
SQLite file (memory stays flat), each request takes its answer as its last assistant turn, and
the output files are read last: a line whose request was read is part of that record (counted
as joined, not as a record), a line whose request was not given, or whose request failed, is
quarantined with its reason.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from deploysim.logs.formats.base import (
    FormatError,
    RawRecord,
    RecordError,
    decode_line,
    iter_lines,
    load_json_object,
)
from deploysim.logs.formats.exports import iso_time, obj


def output_line(rec: dict[str, Any]) -> bool:
    """Whether a JSON record is a Batch output line (a response without its request)."""
    return isinstance(rec.get("custom_id"), str) and "response" in rec and not isinstance(rec.get("body"), dict)


def is_output_file(path: Path) -> bool:
    """Whether the first record of a file is a Batch output line."""
    try:
        for no, raw, err in iter_lines(path):
            if err or raw is None or not raw.strip():
                continue
            return output_line(load_json_object(decode_line(raw, no == 1)))
    except Exception:  # not JSON, a broken stream: reading the file reports it
        return False
    return False


def _answer(rec: dict[str, Any]) -> dict[str, Any]:
    """The answer of an output line: {message, model, timestamp}; RecordError when the request failed."""
    response = obj(rec.get("response"))
    body = obj(response.get("body"))
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    if rec.get("error") or response.get("status_code", 200) != 200 or not isinstance(message, dict):
        why = obj(rec.get("error")).get("message") or obj(body.get("error")).get("message") or "no answer"
        raise RecordError(f"Batch request {rec['custom_id']!r} failed: {why}")
    return {"message": message, "model": body.get("model"), "timestamp": iso_time(body.get("created"))}


class BatchAnswers:
    """custom_id -> answer of the given output files, on disk; which ones a request took."""

    def __init__(self, files: list[Path]) -> None:
        self.files = set(files)
        self._dir = tempfile.TemporaryDirectory(prefix="deploysim-batch-")
        self._db = sqlite3.connect(Path(self._dir.name) / "answers.sqlite", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE answer (id TEXT PRIMARY KEY, body TEXT, taken INTEGER DEFAULT 0) WITHOUT ROWID; BEGIN;"
        )
        for path in files:
            self._load(path)
        self._db.execute("COMMIT")

    def _load(self, path: Path) -> None:
        try:
            for no, raw, err in iter_lines(path):
                if err or raw is None or not raw.strip():
                    continue
                try:
                    rec = load_json_object(decode_line(raw, no == 1))
                    if output_line(rec):
                        body = json.dumps(_answer(rec), ensure_ascii=False)
                        self._db.execute(
                            "INSERT OR IGNORE INTO answer (id, body) VALUES (?, ?)", (rec["custom_id"], body)
                        )
                except RecordError:
                    continue  # reported when the file is read
        except FormatError:
            return  # a broken stream: reading the file reports it

    def attach(self, rec: dict[str, Any]) -> dict[str, Any]:
        """A request's record with its answer as the last turn (when an output file holds it)."""
        cid, messages = rec.get("id"), rec.get("messages")
        if not isinstance(cid, str) or not isinstance(messages, list):
            return rec
        row = self._db.execute("SELECT body FROM answer WHERE id = ?", (cid,)).fetchone()
        if row is None:
            return rec
        self._db.execute("UPDATE answer SET taken = 1 WHERE id = ?", (cid,))
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            return rec  # the line held the answer already
        answer = json.loads(row[0])
        meta = dict(obj(rec.get("metadata")))
        meta.update({k: answer[k] for k in ("model", "timestamp") if answer.get(k)})
        return {**rec, "messages": [*messages, answer["message"]], "metadata": meta}

    def _taken(self, cid: str) -> bool:
        row = self._db.execute("SELECT taken FROM answer WHERE id = ?", (cid,)).fetchone()
        return bool(row and row[0])

    def read_output(self, path: Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[RawRecord | None]:
        """The lines of an output file read after the inputs: None for an answer a request took,
        a RawRecord with the reason for the others."""
        for no, raw, err in iter_lines(path, on_bytes):
            if err is not None:
                yield RawRecord(no, error=err)
                continue
            if raw is None or not raw.strip():
                continue
            try:
                rec = load_json_object(decode_line(raw, no == 1))
                if not output_line(rec):
                    raise RecordError("not a Batch output line (no custom_id and response)")
                _answer(rec)
                if not self._taken(rec["custom_id"]):
                    raise RecordError(
                        f"Batch output line {rec['custom_id']!r} matches no request of the batch input files given"
                    )
            except RecordError as e:
                yield RawRecord(no, error=str(e))
            else:
                yield None

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
