"""The traffic day by day: the day of a conversation, the log files' index by day, windows of days.

A conversation's day is the UTC day of its timestamp (metadata `timestamp`, else `created_at`,
`created`, `start_time`: ISO 8601 text or Unix seconds/milliseconds). A conversation without a
usable one takes the UTC day its file was last modified (counted as `dated_by_file`): a file of
logs without timestamps is the traffic of the day it was written.

The index (raw/ingest-index.json, no log text in it) remembers, per log file, its size, modification
time, content hash and how many conversations it holds per day, so a day's ingest reads only the
files that hold that day, and a file is read again only when it changed.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

TIME_KEYS = ("timestamp", "created_at", "created", "start_time")


def is_day(text: str | None) -> bool:
    """Whether text names a day as YYYY-MM-DD (a daily partition key, a lake day folder)."""
    return bool(text) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or "") is not None


def parse_day(value: Any) -> str | None:
    """The UTC day of a timestamp (ISO 8601 text, or Unix seconds or milliseconds), None if unusable.
    A time without a zone is taken as UTC."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        secs = float(value)
        secs = secs / 1000 if secs > 1e11 else secs  # milliseconds
        try:
            return datetime.fromtimestamp(secs, tz=timezone.utc).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return parse_day(float(text))
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.date().isoformat()


def day_of(metadata: dict[str, Any] | None, fallback: str) -> tuple[str, bool]:
    """(day, dated): the day of the first usable timestamp in a conversation's metadata, else
    (fallback, False)."""
    for key in TIME_KEYS:
        day = parse_day((metadata or {}).get(key))
        if day:
            return day, True
    return fallback, False


def file_day(path: Path | str) -> str:
    """The UTC day a file was last modified."""
    return datetime.fromtimestamp(os.stat(path).st_mtime, tz=timezone.utc).date().isoformat()


def window(end: str, n: int) -> list[str]:
    """The n days ending at `end`, oldest first."""
    last = date.fromisoformat(end)
    return [(last - timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


def ranges(days: list[str]) -> list[tuple[str, str]]:
    """Consecutive days as (first, last) ranges, in order."""
    out: list[tuple[str, str]] = []
    for d in sorted(set(days)):
        if out and date.fromisoformat(d) - date.fromisoformat(out[-1][1]) == timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def describe(days: list[str]) -> str:
    """Days as ranges with their count: "2026-05-04 to 2026-05-10 (7 days)" ("" for none)."""
    if not days:
        return ""
    spans = ", ".join(a if a == b else f"{a} to {b}" for a, b in ranges(days))
    n = len(set(days))
    return f"{spans} ({n} day{'s' if n != 1 else ''})"


class LogIndex:
    """path -> {"size", "mtime_ns", "sha", "days": {day: conversations}} for the log files seen."""

    def __init__(self, path: Path, files: dict[str, dict[str, Any]] | None = None) -> None:
        self.path, self.files = path, files or {}

    @classmethod
    def load(cls, path: Path) -> LogIndex:
        try:
            return cls(path, json.loads(path.read_text()).get("files", {}))
        except (OSError, ValueError):
            return cls(path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"files": self.files}, sort_keys=True, indent=1))
        os.replace(tmp, self.path)

    def is_current(self, path: Path) -> bool:
        """Indexed, and unchanged since (same size and modification time)."""
        e, st = self.files.get(str(path)), path.stat()
        return e is not None and e["size"] == st.st_size and e["mtime_ns"] == st.st_mtime_ns and "sha" in e

    def days_of(self, path: Path) -> set[str]:
        return set(self.files.get(str(path), {}).get("days", {}))

    def record(self, path: Path, sha: str, days: dict[str, int]) -> None:
        st = path.stat()
        self.files[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha": sha, "days": dict(days)}

    def keep_only(self, paths: list[Path]) -> None:
        names = {str(p) for p in paths}
        self.files = {k: v for k, v in self.files.items() if k in names}

    def day_files(self, day: str, paths: list[Path]) -> list[Path]:
        """The files (of paths) that hold conversations of the day."""
        return [p for p in paths if day in self.days_of(p)]

    def all_days(self, paths: list[Path]) -> dict[str, int]:
        """day -> conversations, over the given files."""
        out: dict[str, int] = {}
        for p in paths:
            for d, n in self.files.get(str(p), {}).get("days", {}).items():
                out[d] = out.get(d, 0) + n
        return dict(sorted(out.items()))
