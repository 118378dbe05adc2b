"""The replay engine: send logged conversation prefixes to a candidate, answer its tool calls.

- Every successful response is cached (sqlite, keyed by a canonical hash of the base URL,
  model, parameters, a keyed hash of the credential, messages and tools) the moment it
  arrives, so a re-run, or a run started again after being killed, makes no call it has
  already completed; an answer is never reused for another endpoint, model or key.
- Concurrency adapts (AIMD): it starts at the candidate's level, halves on a 429 and
  recovers by one slot per window of successes; optional token buckets cap requests and
  tokens per minute; retries use jittered exponential backoff and honour Retry-After;
  each request has a timeout and the run an optional overall deadline.
- Failure is bounded: a host name that does not resolve, HTTP 401/403, connections refused
  for `refused_limit_s` or no response at all for `silent_limit_s` make the endpoint unusable
  (EndpointGuard): the run stops taking work and the items left end as "not attempted".
- Every conversation ends as a record: a response, or a terminal error with its reason (key
  masked, personal data redacted); failure_classes() groups the reasons.
- Agent loops answer tool calls through deploysim.replay.toolsim (recorded / simulated / error).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import random
import re
import secrets
import signal
import sqlite3
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Literal

import httpx

from deploysim import interrupts
from deploysim.candidates import Candidate
from deploysim.schemas import Conversation, Message, ReplayRecord, ToolCall, ToolResultRecord, Usage
from deploysim.replay.toolsim import UNAVAILABLE, ToolResolver  # noqa: F401  (UNAVAILABLE re-exported)

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
RETRY_AFTER_CAP_S = 60.0  # never sleep longer than this on a server's say-so

Progress = Callable[[int, int], None]
Mode = Literal["last", "every"]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------- cache


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
        self._conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL NOT NULL)")
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

    def key(self, base_url: str, model: str, params: dict[str, Any], messages: list[dict[str, Any]],
            tools: list[dict[str, Any]], credential: str | None = None) -> str:
        """The cache key of a request: everything that can change the answer."""
        payload = {"endpoint": base_url.rstrip("/"), "credential": self.credential_tag(credential), "model": model,
                   "params": params, "messages": messages, "tools": tools or []}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        if key not in self._keys:
            return None
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def put(self, key: str, response: dict[str, Any] | bytes | str) -> None:
        text = response if isinstance(response, str) else response.decode() if isinstance(response, bytes) else json.dumps(response)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)", (key, text, time.time()))
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


# ---------------------------------------------------------------------------- pacing


class AdaptiveLimiter:
    """AIMD concurrency limit on requests in flight.

    Starts at `initial`, never exceeds `maximum` or drops below `minimum`. A throttle (429)
    halves the limit, at most once per round trip: a 429 for a request that started before
    the last cut is the same congestion signal and is ignored. Each success adds 1/limit,
    so the limit grows by one slot per window of successes.
    """

    def __init__(self, initial: int, maximum: int | None = None, minimum: int = 1) -> None:
        self.maximum = max(maximum or initial, 1)
        self.minimum = max(min(minimum, self.maximum), 1)
        self.limit = float(min(max(initial, self.minimum), self.maximum))
        self.in_flight = 0
        self.cuts = 0
        self._epoch = 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one in-flight slot; yields the epoch to pass to throttled()."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
            epoch = self._epoch
        try:
            yield epoch
        finally:
            async with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def throttled(self, epoch: int) -> None:
        if epoch == self._epoch:
            self.limit = max(self.minimum, self.limit / 2)
            self._epoch += 1
            self.cuts += 1

    def succeeded(self) -> None:
        before = int(self.limit)
        self.limit = min(self.maximum, self.limit + 1 / self.limit)
        if int(self.limit) > before:
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()


class TokenBucket:
    """A per-minute budget (requests or tokens) refilled continuously; burst = one minute's worth."""

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError("a per-minute limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.level = self.capacity
        self.taken = 0.0  # total units spent (take + spend)
        self._t = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
        self._t = now

    async def take(self, n: float) -> None:
        """Wait until n units are available (n is capped at the capacity), then spend them."""
        n = min(n, self.capacity)
        async with self._lock:  # FIFO: one waiter at a time
            self._refill()
            while self.level < n:
                await asyncio.sleep((n - self.level) / self.rate)
                self._refill()
            self.level -= n
            self.taken += n

    def spend(self, n: float) -> None:
        """Spend after the fact (e.g. completion tokens); the level may go negative."""
        self._refill()
        self.level -= n
        self.taken += n


class DeadlineExceeded(Exception):
    pass


@dataclass
class Pacing:
    """What a client must respect across all its requests."""

    limiter: AdaptiveLimiter
    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None
    deadline: float | None = None  # time.monotonic() value

    def remaining(self) -> float:
        if self.deadline is None:
            return math.inf
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded()
        return left


class EndpointGuard:
    """Decides when an endpoint is unusable, so a run stops instead of failing item by item.

    Unusable (`reason` set, never cleared): a host name that does not resolve, HTTP 401/403,
    connections refused for `refused_s` with no response since, no response at all (timeouts,
    failed connections) for `silent_s`, or `non_json_limit` non-JSON answers in a row.
    """

    def __init__(self, refused_s: float = 10.0, silent_s: float = 120.0, non_json_limit: int = 3) -> None:
        self.refused_s, self.silent_s, self.non_json_limit = refused_s, silent_s, non_json_limit
        self.reason: str | None = None
        self._since: dict[str, float] = {}  # failure kind -> first failure since the last response
        self._non_json = 0

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def responded(self, usable: bool = True) -> None:
        """An HTTP response arrived (usable: it was a valid completion)."""
        self._since.clear()
        if usable:
            self._non_json = 0

    def failed(self, kind: str, problem: str) -> None:
        """An attempt got no response: kind "dns", "refused" or "silent"."""
        if kind == "dns":
            self.trip(problem)
            return
        now = time.monotonic()
        since = self._since.setdefault(kind, now)
        limit = self.refused_s if kind == "refused" else self.silent_s
        if now - since >= limit:
            self.trip(f"connection refused for {limit:g} s" if kind == "refused" else f"no response for {limit:g} s")

    def non_json(self, problem: str) -> None:
        self._non_json += 1
        if self._non_json >= self.non_json_limit:
            self.trip(problem)


# ---------------------------------------------------------------------------- transport


class ReplayError(Exception):
    """A request that could not be completed; str() is a short reason, never containing the key."""

    def __init__(self, reason: str, attempts: int = 0, http_calls: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.http_calls = http_calls


class _Retryable(Exception):
    """One failed attempt worth retrying; `delay` is a server-requested wait, if any; `kind` ("dns",
    "refused", "silent") when no response arrived (see EndpointGuard)."""

    def __init__(self, problem: str, delay: float | None = None, throttled: bool = False, kind: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.delay = delay
        self.throttled = throttled
        self.kind = kind


def _connection_problem(kind: str, reason: str) -> _Retryable:
    """A connection failure as an attempt's problem (the transports' common wording)."""
    if kind == "dns":
        return _Retryable(reason, kind="dns")
    if kind == "refused":
        return _Retryable("connection refused", kind="refused")
    return _Retryable("connection error", kind="silent")


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): Retry-After if given, else full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to backoff


def _media_type(content_type: str | bytes | None) -> str:
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return (content_type or "").split(";")[0].strip().lower()


def _not_json(body: bytes, media: str) -> str | None:
    """"non-JSON response (<type>)" when the body is a web page or declared as neither JSON nor text."""
    if body.lstrip()[:1] == b"<" or (media and "json" not in media and media != "text/plain"):
        return f"non-JSON response ({media or 'no content type'})"
    return None


def _server_message(body: bytes, media: str) -> str:
    """What an error response says (unredacted: the caller redacts, then cuts)."""
    try:
        err = json.loads(body).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)
    except (ValueError, AttributeError, UnicodeDecodeError):
        pass
    return _not_json(body, media) or body[:2000].decode("utf-8", "replace").strip() or "error"


def _valid_completion(data: Any) -> bool:
    try:
        return isinstance(data["choices"][0]["message"], dict)
    except (KeyError, IndexError, TypeError):
        return False


class _HttpxTransport:
    """POST over an httpx.AsyncClient (used when one is passed in, e.g. a MockTransport)."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str], owned: bool) -> None:
        self._client, self._owned = client, owned
        self._client.headers.update(headers)

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, str | None, bytes, str | None]:
        try:
            resp = await self._client.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=timeout)
        except httpx.TimeoutException:
            raise _Retryable("timeout", kind="silent") from None
        except httpx.TransportError as e:
            raise _connection_problem(*_httpx_failure(e, url)) from None
        return resp.status_code, resp.headers.get("retry-after"), resp.content, resp.headers.get("content-type")

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


def _httpx_failure(e: Exception, url: str) -> tuple[str, str]:
    """(kind, reason) of an httpx transport error, from the OS error behind it."""
    import socket
    from urllib.parse import urlsplit

    err: BaseException | None = e
    while err is not None:
        if isinstance(err, socket.gaierror):
            return "dns", f"cannot resolve host {urlsplit(url).hostname}"
        if isinstance(err, ConnectionRefusedError):
            return "refused", "connection refused"
        err = err.__cause__ or err.__context__
    text = str(e)
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo failed" in text:
        return "dns", f"cannot resolve host {urlsplit(url).hostname}"
    if "Connection refused" in text or "Errno 111" in text:
        return "refused", "connection refused"
    return "silent", "connection error"


class _Http1Transport:
    """POST over deploysim.replay.http (pooled HTTP/1.1 keep-alive, httptools parser)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        from deploysim.replay.http import Http1Pool

        self._pool = Http1Pool(url, headers)

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, str | None, bytes, str | None]:
        from deploysim.replay.http import ConnectionFailed

        try:
            reply = await self._pool.post(body, timeout)
        except TimeoutError:
            raise _Retryable("timeout", kind="silent") from None
        except ConnectionFailed as e:
            raise _connection_problem(e.kind, str(e)) from None
        ctype = reply.content_type.decode("latin-1") if reply.content_type else None
        return reply.status, reply.retry_after.decode("latin-1") if reply.retry_after else None, reply.body, ctype

    async def aclose(self) -> None:
        self._pool.close()


def _uses_proxy(url: str) -> bool:
    import urllib.request
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return u.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(u.hostname or "")


def _default_transport(url: str, headers: dict[str, str], max_connections: int, timeout_s: float) -> Any:
    """The pooled HTTP/1.1 client; httpx (which honours HTTP(S)_PROXY) when a proxy applies."""
    if _uses_proxy(url):
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), limits=httpx.Limits(max_connections=max_connections))
        return _HttpxTransport(client, headers, owned=True)
    return _Http1Transport(url, headers)


# ---------------------------------------------------------------------------- client


@dataclass
class CompletionResult:
    message: dict[str, Any]  # the assistant message, as the server returned it
    usage: Usage = field(default_factory=Usage)
    http_calls: int = 0
    cached: bool = False
    attempts: int = 0


@dataclass
class ClientCounters:
    requests: int = 0  # HTTP attempts sent
    completed: int = 0  # successful responses received (and cached)
    cached: int = 0  # answered from the cache
    throttled: int = 0  # 429s
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatClient:
    """Async OpenAI-compatible chat client for one candidate, with caching, pacing and retries.

    read_cache=False: every answer over HTTP (answers are still written to the cache).
    """

    def __init__(
        self,
        candidate: Candidate,
        cache: ReplayCache,
        client: httpx.AsyncClient | None = None,
        pacing: Pacing | None = None,
        guard: EndpointGuard | None = None,
        read_cache: bool = True,
    ) -> None:
        self.candidate = candidate
        self.cache = cache
        self._key = candidate.api_key()  # raises naming the env var (not the value) if unset
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        conc = max(candidate.concurrency, 1)
        self.url = candidate.base_url.rstrip("/") + "/chat/completions"
        self._transport = (
            _HttpxTransport(client, headers, owned=False) if client is not None
            else _default_transport(self.url, headers, conc, candidate.timeout_s)
        )
        self.pacing = pacing or Pacing(AdaptiveLimiter(conc))
        self.guard = guard or EndpointGuard()
        self.read_cache = read_cache
        self.counters = ClientCounters()

    def redact(self, text: str) -> str:
        """Text with the API key masked and personal data redacted (for reasons and errors)."""
        return redact_reason(text.replace(self._key, "***") if self._key else text)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def cache_key(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                  params: dict[str, Any] | None = None) -> str:
        c = self.candidate
        return self.cache.key(c.base_url, c.model, {**c.params, **(params or {})}, messages, tools, self._key)

    def _stopped(self, problem: str | None, attempts: int, calls: int) -> ReplayError:
        reason = f"endpoint unusable ({self.guard.reason})"
        if problem is None:
            return ReplayError(self.redact(f"stopped: {reason}"), attempts, calls)
        if problem == self.guard.reason:  # this attempt's failure made it unusable
            return ReplayError(self.redact(problem), attempts, calls)
        return ReplayError(self.redact(f"{problem} after {attempts} attempt{'s' * (attempts != 1)}; {reason}"), attempts, calls)

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                       params: dict[str, Any] | None = None) -> CompletionResult:
        """The assistant's reply to `messages`, from cache or over HTTP (retrying transient failures).
        params: request parameters beside the candidate's (e.g. a seed per judge sample)."""
        c = self.candidate
        key = self.cache_key(messages, tools, params)
        if self.read_cache and (hit := self.cache.get(key)) is not None:
            self.counters.cached += 1
            return CompletionResult(message=hit["choices"][0]["message"], usage=_usage(hit), cached=True)

        payload: dict[str, Any] = {"model": c.model, "messages": messages, **c.params, **(params or {})}
        if tools:
            payload["tools"] = tools
        body = json.dumps(payload, ensure_ascii=False).encode()
        est_tokens = len(body) / 4
        attempts_allowed = c.max_retries + 1
        problem: str | None = None
        calls = 0
        for attempt in range(1, attempts_allowed + 1):
            if self.guard.reason:
                raise self._stopped(problem, attempt - 1, calls)
            try:
                left = self.pacing.remaining()  # raises once the deadline has passed
                try:
                    async with asyncio.timeout(None if left == math.inf else left):  # no bucket wait past it
                        if self.pacing.requests:
                            await self.pacing.requests.take(1)
                        if self.pacing.tokens:
                            await self.pacing.tokens.take(est_tokens)
                except TimeoutError:
                    raise DeadlineExceeded() from None
                async with self.pacing.limiter.slot() as epoch:
                    timeout = min(c.timeout_s, self.pacing.remaining())
                    calls += 1
                    self.counters.requests += 1
                    try:
                        data, raw = await self._attempt(body, timeout)
                    except _Retryable as r:
                        if r.throttled:
                            self.counters.throttled += 1
                            self.pacing.limiter.throttled(epoch)
                        raise
                    self.pacing.limiter.succeeded()
            except _Retryable as r:
                problem = r.problem
                if r.kind:
                    self.guard.failed(r.kind, r.problem)
                if self.guard.reason:
                    raise self._stopped(problem, attempt, calls) from None
                if attempt < attempts_allowed:
                    self.counters.retries += 1
                    delay = backoff_delay(attempt, r.delay)
                    try:
                        if delay >= self.pacing.remaining():
                            raise DeadlineExceeded()
                    except DeadlineExceeded:
                        raise ReplayError(f"deadline exceeded ({problem} on attempt {attempt})", attempt, calls) from None
                    await asyncio.sleep(delay)
                continue
            except DeadlineExceeded:
                raise ReplayError("deadline exceeded" + (f" (after {problem})" if calls else ""), attempt - 1, calls) from None
            except ReplayError as e:
                raise ReplayError(self.redact(e.reason), attempts=attempt, http_calls=calls) from None
            usage = _usage(data)
            self.cache.put(key, raw)  # the body as received: no re-serialisation
            self.counters.completed += 1
            self.counters.prompt_tokens += usage.prompt_tokens
            self.counters.completion_tokens += usage.completion_tokens
            if self.pacing.tokens:
                self.pacing.tokens.spend(max(usage.prompt_tokens + usage.completion_tokens - est_tokens, 0))
            return CompletionResult(message=data["choices"][0]["message"], usage=usage, http_calls=calls, attempts=attempt)
        raise ReplayError(self.redact(f"{problem} after {attempts_allowed} attempts"), attempts=attempts_allowed, http_calls=calls)

    async def _attempt(self, body: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        """One HTTP attempt: the parsed and the raw body, or _Retryable / terminal ReplayError."""
        status, retry_after, content, ctype = await self._transport.post(self.url, body, timeout)
        media = _media_type(ctype)
        if status == 429:
            self.guard.responded(usable=False)
            raise _Retryable("HTTP 429", _parse_retry_after(retry_after), throttled=True)
        if status >= 500 or status == 408:
            self.guard.responded(usable=False)
            raise _Retryable(f"HTTP {status}", _parse_retry_after(retry_after))
        if status >= 400:
            self.guard.responded(usable=False)
            msg = self.redact(_server_message(content, media))[:200]  # masked and redacted before the cut
            if status in (401, 403):
                self.guard.trip(f"HTTP {status} {'unauthorized' if status == 401 else 'forbidden'}")
            elif msg.startswith("non-JSON response"):
                self.guard.non_json(f"HTTP {status}: {msg}")
            raise ReplayError(f"HTTP {status}: {msg}")
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            if problem := _not_json(content, media):  # a web page where an API should be: retrying will not help
                self.guard.responded(usable=False)
                self.guard.non_json(problem)
                raise ReplayError(problem) from None
            self.guard.responded(usable=False)
            raise _Retryable("malformed JSON response") from None
        if not _valid_completion(data):
            self.guard.responded(usable=False)
            raise _Retryable("malformed JSON response")
        self.guard.responded()
        return data, content


def redact_reason(text: str) -> str:
    """An error reason with personal data and anything shaped like a secret replaced (deterministic
    detectors of deploysim.privacy.redact)."""
    if not text:
        return text
    from deploysim.privacy.redact import PlaceholderState, redact_text

    return redact_text(text, PlaceholderState()) or ""


def _usage(data: dict[str, Any]) -> Usage:
    u = data.get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0))


def _to_message(raw: dict[str, Any], step: int) -> Message:
    """The server's assistant message as a Message (arguments always JSON text)."""
    calls = []
    for j, c in enumerate(raw.get("tool_calls") or []):
        fn = c.get("function") or {}
        args = fn.get("arguments", "{}")
        calls.append(
            ToolCall(
                id=str(c.get("id") or f"call_{step}_{j}"),
                name=str(fn.get("name", "")),
                arguments=args if isinstance(args, str) else json.dumps(args),
            )
        )
    content = raw.get("content")
    return Message(role="assistant", content=content if isinstance(content, str) or content is None else json.dumps(content), tool_calls=calls)


# ---------------------------------------------------------------------------- options, items


@dataclass
class ReplayOptions:
    """How to replay (besides the candidate's own base URL, model, params, concurrency, retries)."""

    mode: Mode = "last"  # "last": the last user turn; "every": every user turn answered by an assistant
    max_steps: int = 8  # model calls per rollout (agent loop bound)
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    deadline_s: float | None = None  # overall; items not finished by then end with an error
    min_concurrency: int = 1  # the AIMD floor
    tool_simulator: Candidate | None = None  # model that invents results for unrecorded tool calls
    read_cache: bool = True  # False: no answer read from the cache (all over HTTP; still written)
    refused_limit_s: float = 10.0  # connections refused this long with no response: endpoint unusable
    silent_limit_s: float = 120.0  # no response at all (timeouts, failed connections) this long: unusable
    price_prompt_per_mtok: float = 0.0  # cost accounting, per million tokens
    price_completion_per_mtok: float = 0.0


@dataclass(frozen=True)
class ReplayItem:
    """One regeneration: a conversation cut after one of its user turns."""

    conv: Conversation
    user_turn: int  # index of the user message that ends the prefix

    @property
    def prefix(self) -> list[Message]:
        return self.conv.messages[: self.user_turn + 1]

    @property
    def logged(self) -> list[Message]:
        """What production did after this user turn, up to the next user turn."""
        rest = self.conv.messages[self.user_turn + 1 :]
        nxt = next((i for i, m in enumerate(rest) if m.role == "user"), len(rest))
        return rest[:nxt]


def items_for(conversations: list[Conversation], mode: Mode = "last") -> list[ReplayItem]:
    """The replay items of conversations, in order."""
    if mode == "last":
        return [ReplayItem(c, c.last_user_index()) for c in conversations]
    if mode != "every":
        raise ValueError(f"unknown replay mode {mode!r} (expected 'last' or 'every')")
    out = []
    for c in conversations:
        users = [i for i, m in enumerate(c.messages) if m.role == "user"]
        for i in users:
            item = ReplayItem(c, i)
            if any(m.role == "assistant" for m in item.logged):
                out.append(item)
    return out


# ---------------------------------------------------------------------------- replay


async def replay_item(
    item: ReplayItem, client: ChatClient, max_steps: int = 8, simulator: ChatClient | None = None
) -> ReplayRecord:
    """Replay one item through the agent loop; every failure becomes a record with its reason."""
    conv = item.conv
    rec = ReplayRecord(candidate=client.candidate.name, conversation_id=conv.conversation_id, status="ok",
                       user_turn=item.user_turn)
    messages = [m.to_openai() for m in item.prefix]
    tools = conv.tools
    resolver: ToolResolver | None = None  # built at the first tool call
    started = time.perf_counter()
    try:
        for step in range(max_steps):
            res = await client.complete(messages, tools)
            rec.attempts += res.attempts
            rec.http_calls += res.http_calls
            rec.cached_calls += int(res.cached)
            rec.usage.prompt_tokens += res.usage.prompt_tokens
            rec.usage.completion_tokens += res.usage.completion_tokens
            asst = _to_message(res.message, step)
            rec.turn.append(asst)
            messages.append(asst.to_openai())
            if not asst.tool_calls:
                break
            resolver = resolver or ToolResolver(conv, item.user_turn, simulator)
            for call in asst.tool_calls:
                tr = await resolver.answer(call)
                tool_msg = Message(role="tool", content=tr.content, tool_call_id=call.id, name=call.name)
                rec.turn.append(tool_msg)
                messages.append(tool_msg.to_openai())
                rec.tool_results.append(tr)
        else:
            rec.status, rec.error = "error", f"step limit ({max_steps}) reached"
    except ReplayError as e:
        rec.status, rec.error = "error", e.reason
        rec.attempts += e.attempts
        rec.http_calls += e.http_calls
    except Exception as e:  # one broken conversation must not stop the run
        rec.status, rec.error = "error", client.redact(f"{type(e).__name__}: {e}")[:300]
    rec.latency_ms = (time.perf_counter() - started) * 1000
    return rec


async def replay_one(conv: Conversation, client: ChatClient, max_steps: int = 8) -> ReplayRecord:
    """Replay one conversation's last user turn (see replay_item)."""
    return await replay_item(ReplayItem(conv, conv.last_user_index()), client, max_steps)


def make_client(candidate: Candidate, cache: ReplayCache, options: ReplayOptions | None = None) -> ChatClient:
    """A client for candidate with the options' pacing, deadline (counted from now), guard and cache use."""
    opts = options or ReplayOptions()
    deadline = time.monotonic() + opts.deadline_s if opts.deadline_s else None
    return ChatClient(candidate, cache, pacing=_pacing(candidate, opts, deadline),
                      guard=EndpointGuard(opts.refused_limit_s, opts.silent_limit_s), read_cache=opts.read_cache)


def _pacing(candidate: Candidate, options: ReplayOptions, deadline: float | None) -> Pacing:
    conc = max(candidate.concurrency, 1)
    return Pacing(
        limiter=AdaptiveLimiter(conc, conc, options.min_concurrency),
        requests=TokenBucket(options.requests_per_minute) if options.requests_per_minute else None,
        tokens=TokenBucket(options.tokens_per_minute) if options.tokens_per_minute else None,
        deadline=deadline,
    )


async def replay_items(
    items: list[ReplayItem],
    candidate: Candidate,
    cache: ReplayCache,
    options: ReplayOptions | None = None,
    progress: Progress | None = None,
    on_record: Callable[[int, ReplayRecord], None] | None = None,
    client: ChatClient | None = None,
) -> list[ReplayRecord]:
    """Replay items with adaptive concurrency; records in input order.

    on_record(index, record) is called as each item finishes (for incremental writing). Once the
    candidate's endpoint is unusable (see EndpointGuard) no item is started: each one left ends as
    "not attempted: endpoint unusable (<why>)".
    """
    opts = options or ReplayOptions()
    total, done = len(items), 0
    results: list[ReplayRecord | None] = [None] * total
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    own = client is None
    client = client or make_client(candidate, cache, opts)
    if client.pacing.deadline is None and opts.deadline_s:
        client.pacing.deadline = time.monotonic() + opts.deadline_s
    deadline = client.pacing.deadline
    simulator = None
    if opts.tool_simulator is not None:
        simulator = make_client(opts.tool_simulator, cache, opts)
        simulator.pacing.deadline = deadline

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            item = items[i]
            if client.guard.reason:
                rec = ReplayRecord(candidate=candidate.name, conversation_id=item.conv.conversation_id, status="error",
                                   error=f"not attempted: endpoint unusable ({client.guard.reason})", user_turn=item.user_turn)
            elif deadline is not None and time.monotonic() >= deadline:
                rec = ReplayRecord(candidate=candidate.name, conversation_id=item.conv.conversation_id, status="error",
                                   error="deadline exceeded before replay started", user_turn=item.user_turn)
            else:
                rec = await replay_item(item, client, opts.max_steps, simulator)
            results[i] = rec
            done += 1
            if on_record:
                on_record(i, rec)
            if progress:
                progress(done, total)

    try:
        # Workers bound the conversations in progress; the limiter bounds requests in flight.
        n_workers = min(max(candidate.concurrency, 1), max(total, 1))
        await asyncio.gather(*(worker() for _ in range(n_workers)))
    finally:
        if own:
            await client.aclose()
        if simulator is not None:
            await simulator.aclose()
    return [r for r in results if r is not None]


async def replay_conversations(
    conversations: list[Conversation],
    candidate: Candidate,
    cache: ReplayCache,
    max_steps: int = 8,
    progress: Progress | None = None,
    options: ReplayOptions | None = None,
    on_record: Callable[[int, ReplayRecord], None] | None = None,
) -> list[ReplayRecord]:
    """Replay conversations (options.mode: last user turn, or every one); records in input order."""
    opts = options or ReplayOptions(max_steps=max_steps)
    return await replay_items(items_for(conversations, opts.mode), candidate, cache, opts, progress, on_record)


def run_async(coro: Any) -> Any:
    """Run a coroutine on a fresh event loop (uvloop when installed: less CPU per request).

    Ctrl-C or SIGTERM stops it: no new work is taken, requests in flight are dropped (what completed
    is in the cache), and the signal's previous handler then runs (Dagster's marks the step
    interrupted; Python's raises KeyboardInterrupt)."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    stopped: list[int] = []
    saved = _stop_handlers()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_stoppable(coro, saved, stopped))
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        interrupts.rewatch()
    handler = saved[stopped[0]]
    if callable(handler):
        handler(stopped[0], None)
    raise KeyboardInterrupt


def _stop_handlers() -> dict[int, Any]:
    """The current handlers of the stop signals we may take over (main thread, not ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: h for s in interrupts.STOP_SIGNALS if (h := signal.getsignal(s)) not in (signal.SIG_IGN, None)}


async def _stoppable(coro: Any, saved: dict[int, Any], stopped: list[int]) -> Any:
    loop, task = asyncio.get_running_loop(), asyncio.current_task()

    def stop(signum: int) -> None:
        if not stopped:
            stopped.append(signum)
            interrupts.note(signum)
            task.cancel()

    for sig in saved:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await coro
    finally:
        for sig in saved:
            loop.remove_signal_handler(sig)


def replay(
    conversations: list[Conversation],
    candidate: Candidate,
    cache_path: Path,
    max_steps: int = 8,
    progress: Progress | None = None,
    options: ReplayOptions | None = None,
    on_record: Callable[[int, ReplayRecord], None] | None = None,
) -> list[ReplayRecord]:
    """Synchronous wrapper around replay_conversations with a cache at cache_path."""
    with ReplayCache(cache_path) as cache:
        return run_async(replay_conversations(conversations, candidate, cache, max_steps, progress, options, on_record))


# ---------------------------------------------------------------------------- accounting


def cost_usd(prompt_tokens: int, completion_tokens: int, options: ReplayOptions) -> float:
    return (prompt_tokens * options.price_prompt_per_mtok + completion_tokens * options.price_completion_per_mtok) / 1e6


# Failure classes of error reasons, first match wins (the reasons are written by this module).
FAILURE_CLASSES: list[tuple[str, str, re.Pattern[str]]] = [
    (name, label, re.compile(rx)) for name, label, rx in [
        ("endpoint_unusable", "not attempted or stopped: endpoint unusable", r"^(not attempted|stopped): endpoint unusable"),
        ("auth", "authentication refused (HTTP 401/403)", r"^HTTP 40[13]\b"),
        ("dns", "host name does not resolve", r"^cannot resolve host"),
        ("refused", "connection refused", r"^connection refused"),
        ("deadline", "run deadline exceeded", r"^deadline exceeded"),
        ("timeout", "request timed out", r"^timeout"),
        ("non_json", "non-JSON response (not an OpenAI-compatible API?)", r"^(HTTP \d+: )?non-JSON response"),
        ("malformed", "malformed JSON response", r"^malformed JSON response"),
        ("rate_limited", "rate limited (HTTP 429) after every retry", r"^HTTP 429\b"),
        ("server_error", "server error (HTTP 5xx)", r"^HTTP (5\d\d|408)\b"),
        ("rejected", "request rejected (HTTP 4xx)", r"^HTTP 4\d\d\b"),
        ("connection", "connection failed or cut", r"^connection error"),
        ("step_limit", "agent step limit reached", r"^step limit"),
    ]
]


def failure_class(reason: str | None) -> str:
    """The failure class of an error reason (see FAILURE_CLASSES; "other" when none fits)."""
    return next((name for name, _, rx in FAILURE_CLASSES if rx.search(reason or "")), "other")


def failure_classes(records: list[ReplayRecord]) -> list[dict[str, Any]]:
    """One entry per failure class among the error records, most frequent first:
    {"class", "label", "count", "example"} (example: one reason, redacted, never a key)."""
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for r in records:
        if r.status == "error":
            name = failure_class(r.error)
            counts[name] = counts.get(name, 0) + 1
            examples.setdefault(name, r.error or "?")
    labels = {name: label for name, label, _ in FAILURE_CLASSES} | {"other": "other error"}
    return [{"class": name, "label": labels[name], "count": n, "example": redact_reason(examples[name])[:300]}
            for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


_UNUSABLE_RE = re.compile(r"endpoint unusable \((.*)\)$")


def endpoint_unusable(records: list[ReplayRecord]) -> str | None:
    """Why the endpoint was found unusable during the run (a DNS failure, HTTP 401/403, refused or
    silent for too long, non-JSON answers), or None: then the run could not have gone on."""
    for r in records:
        if r.status == "error" and r.error:
            if m := _UNUSABLE_RE.search(r.error):
                return m.group(1)
            if failure_class(r.error) in ("dns", "auth"):
                return r.error
    return None


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Human lines for a summary (from summarize or pipeline.replay_summary): where the answers came
    from, then one line per failure class with its count and an example."""
    n = summary.get("items", summary.get("replayed", 0))
    lines = [f"{summary.get('cached_answers', 0)} of {summary.get('answers', 0)} answers from the cache, "
             f"{summary.get('http_calls', 0)} HTTP calls; {summary.get('ok', 0)} of {n} items replayed"]
    if summary.get("endpoint_unusable"):
        lines.append(f"the endpoint is unusable: {summary['endpoint_unusable']}; the run stopped")
    for f in summary.get("failure_classes") or []:
        lines.append(f"{f['class']}: {f['count']} item{'s' * (f['count'] != 1)} ({f['label']}), e.g. {f['example']}")
    return lines


def summarize(records: list[ReplayRecord], options: ReplayOptions | None = None) -> dict[str, Any]:
    """Counts, tokens and cost of a replay (tokens from the responses' usage).

    answers: model answers received (HTTP or cache); cached_answers: of which read from the cache;
    http_calls: HTTP attempts; failure_classes: see failure_classes(); endpoint_unusable: see
    endpoint_unusable()."""
    opts = options or ReplayOptions()
    n = len(records)
    ok = sum(r.status == "ok" for r in records)
    prompt = sum(r.usage.prompt_tokens for r in records)
    completion = sum(r.usage.completion_tokens for r in records)
    errors: dict[str, int] = {}
    for r in records:
        if r.status == "error":
            errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1
    sources: dict[str, int] = {}
    for r in records:
        for t in r.tool_results:
            sources[t.source] = sources.get(t.source, 0) + 1
    return {
        "items": n,
        "ok": ok,
        "errors": n - ok,
        "completeness": round(ok / n, 4) if n else 0.0,
        "answers": sum(1 for r in records for m in r.turn if m.role == "assistant"),
        "cached_answers": sum(r.cached_calls for r in records),
        "http_calls": sum(r.http_calls for r in records),
        "cached_calls": sum(r.cached_calls for r in records),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": cost_usd(prompt, completion, opts),
        "tool_results": dict(sorted(sources.items())),
        "top_errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        "failure_classes": failure_classes(records),
        "endpoint_unusable": endpoint_unusable(records),
    }


@dataclass
class DryRun:
    items: int
    calls: int  # model calls expected (production's own number of steps per item)
    cached_calls: int  # of which already in the cache (first step only can be checked)
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _tok(messages: list[Message]) -> int:
    return sum(len(m.content or "") + sum(len(c.arguments) + len(c.name) for c in m.tool_calls) for m in messages) // 4 + 1


def dry_run(conversations: list[Conversation], candidate: Candidate, cache: ReplayCache, options: ReplayOptions | None = None) -> DryRun:
    """Estimate calls, tokens and cost before spending them.

    Each item is assumed to take as many model calls as production's logged turn did
    (at least one), with production's prompts and answer lengths; an item whose first
    request is already cached is counted as cached.
    """
    opts = options or ReplayOptions()
    items = items_for(conversations, opts.mode)
    try:
        credential = candidate.api_key()
    except RuntimeError:  # no key: nothing can be known to be cached for it
        credential = None
    readable = opts.read_cache and (credential is not None or not candidate.api_key_env)
    calls = cached = prompt = completion = 0
    for it in items:
        prefix, logged = it.prefix, it.logged
        steps = [i for i, m in enumerate(logged) if m.role == "assistant"][: opts.max_steps] or [None]
        key = cache.key(candidate.base_url, candidate.model, candidate.params, [m.to_openai() for m in prefix],
                        it.conv.tools, credential)
        first_cached = readable and key in cache
        for j, idx in enumerate(steps):
            if j == 0 and first_cached:
                cached += 1
                continue
            calls += 1
            before = prefix + (logged[:idx] if idx is not None else [])
            prompt += _tok(before) + len(canonical_json(it.conv.tools)) // 4
            completion += _tok([logged[idx]]) if idx is not None else min(candidate.max_tokens, 64)
    return DryRun(items=len(items), calls=calls, cached_calls=cached, prompt_tokens=prompt,
                  completion_tokens=completion, cost_usd=round(cost_usd(prompt, completion, opts), 6))
