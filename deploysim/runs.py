"""What the last run of a candidate decided, and the data directory's lock.

The CLI records every run's outcome (passed, blocked, error, interrupted) here, so `deploysim gate`
can never show an older gate as if it were the latest word on a candidate.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from typing import Any, Iterator

from upath import UPath

from deploysim import lake
from deploysim.errors import Unavailable

PASSED, BLOCKED, INCONCLUSIVE, ERROR, INTERRUPTED = "passed", "blocked", "inconclusive", "error", "interrupted"


def _record_path(candidate: str) -> UPath:
    return lake.asset_dir("gate", candidate) / "last_run.json"


def record(candidate: str, status: str, run_id: str | None = None, problems: list[str] | None = None) -> None:
    body = {
        "candidate": candidate,
        "status": status,
        "run_id": run_id,
        "problems": problems or [],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    lake.write_text(_record_path(candidate), json.dumps(body, indent=2))


def last(candidate: str) -> dict[str, Any] | None:
    text = lake.read_text_or_none(_record_path(candidate))
    return json.loads(text) if text else None


class Busy(Unavailable):
    """Another deploysim process holds the data directory."""


@contextmanager
def data_lock(wait_s: float = 0.0, on_wait=None) -> Iterator[None]:
    """Hold <home>/.lock for the duration (one writer per data directory).

    When another process holds it: wait up to wait_s seconds (on_wait(holder) is called once),
    then raise Busy naming the holder."""
    from filelock import FileLock, Timeout

    home = lake.home()
    home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(home / ".lock"))
    info = home / ".lock.holder"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = info.read_text().strip() if info.exists() else "another process"
        if wait_s <= 0:
            raise Busy(
                f"another deploysim run holds {home} ({holder}); wait for it or use another DEPLOYSIM_HOME"
            ) from None
        if on_wait:
            on_wait(holder)
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise Busy(f"another deploysim run still holds {home} after {wait_s:.0f}s ({holder})") from None
    try:
        info.write_text(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()
