"""The replay cache: every successful chat-completion response, kept so no call is made twice.

ReplayCache is a sqlite file (WAL, one committed transaction per put, checkpoints in a background
thread) keyed by a canonical hash (canonical_json) of the base URL, model, parameters, a keyed hash
of the credential (HMAC-SHA256 with a random salt made once per cache file), messages and tools: a
re-run, or a run started again after being killed, makes no call it has already completed, and an
answer is never reused for another endpoint, model or key. default_cache_path puts the file in the
restricted raw zone, owner-only, since it holds model output in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson


def canonical_json(obj: Any) -> str:
    return canonical_bytes(obj).decode()


def canonical_bytes(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes of json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False), made by orjson (several times faster; a replay hashes every request). What
    orjson refuses (non-string keys, lone surrogates, integers past 64 bits) goes through json."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


class ReplayCache:
    """Persistent cache of successful chat-completion responses (sqlite, WAL).

    Each put is its own committed transaction, so a response survives the process being
    killed right after it arrived (synchronous=NORMAL: durable across process death).
    Checkpoints (the only fsyncs) run in a background thread on their own connection, so
    the event loop that puts never waits on the disk.
    """

    CHECKPOINT_EVERY_S = 1.0

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            _private_file(self.path)  # model output holds personal data: owner-only (sqlite's -wal/-shm follow)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL NOT NULL)"
        )
        # The salt of the credential's keyed hash: random, made once per cache file, never leaves it.
        self._conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('salt', ?)", (secrets.token_hex(32),))
        self._salt = bytes.fromhex(self._conn.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()[0])
        # Keys known at open (and added since): a miss costs no query. Another process's
        # later writes are not seen, which only costs a call, never a wrong answer.
        self._keys = {k for (k,) in self._conn.execute("SELECT key FROM responses")}
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if str(path) != ":memory:":
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(target=self._checkpoints, name="replay-cache-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoints(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        try:
            while not self._stop.wait(self.CHECKPOINT_EVERY_S):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def credential_tag(self, credential: str | None) -> str:
        """HMAC-SHA256 of the credential with this cache's salt ("" without one): tells keys apart,
        reveals none."""
        if not credential:
            return ""
        return hmac.new(self._salt, credential.encode(), hashlib.sha256).hexdigest()

    def key(
        self,
        base_url: str,
        model: str,
        params: dict[str, Any],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        credential: str | None = None,
    ) -> str:
        """The cache key of a request: everything that can change the answer."""
        payload = {
            "endpoint": base_url.rstrip("/"),
            "credential": self.credential_tag(credential),
            "model": model,
            "params": params,
            "messages": messages,
            "tools": tools or [],
        }
        return hashlib.sha256(canonical_bytes(payload)).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self._keys:
            return None
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def put(self, key: str, response: dict[str, Any] | bytes | str) -> None:
        text = (
            response
            if isinstance(response, str)
            else response.decode()
            if isinstance(response, bytes)
            else json.dumps(response)
        )
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)", (key, text, time.time())
            )
            self._keys.add(key)

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            if self._checkpointer is not None:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    def __enter__(self) -> ReplayCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _private_file(path: Path) -> None:
    """Create path (and its directory) readable by the owner only; tighten it if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if p.exists():
                os.chmod(p, 0o600)
    except PermissionError:
        pass  # not ours to change: sqlite reports what it cannot open


def default_cache_path(name: str = "replay") -> Path:
    """The default cache file: <home>/raw/cache/<name>.sqlite, in the restricted zone (it holds model
    output in clear), so it goes when the raw zone is purged."""
    from deploysim import lake

    return lake.raw_dir() / "cache" / f"{name}.sqlite"
