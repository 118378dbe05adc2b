"""The OpenAI-compatible chat client of a replay (and of the judge): cache, pacing, retries, transports.

ChatClient answers a request from the ReplayCache or over HTTP, within its Pacing, retrying
transient failures (_Retryable: 429, 5xx/408, timeouts, failed connections, malformed JSON) and
ending in a ReplayError whose reason never holds the key and has personal data redacted. Responses
are validated (a completion with a message; a web page or non-JSON body is named as such);
CompletionResult is one answer, ClientCounters the client's totals. EndpointGuard decides when the
endpoint is unusable (a host name that does not resolve, HTTP 401/403, refused or silent for too
long, non-JSON answers in a row) so a run stops instead of failing item by item. Transports:
_Http1Transport (deploysim.replay.http, pooled HTTP/1.1 keep-alive) by default, _HttpxTransport
when an httpx client is passed in or a proxy applies (_uses_proxy).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from deploysim.candidates import Candidate
from deploysim.replay.cache import ReplayCache
from deploysim.replay.failures import redact_reason
from deploysim.replay.pacing import (
    AdaptiveLimiter,
    DeadlineExceeded,
    Pacing,
    _parse_retry_after,
    backoff_delay,
)
from deploysim.schemas import Usage


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

    def __init__(
        self, problem: str, delay: float | None = None, throttled: bool = False, kind: str | None = None
    ) -> None:
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


def _media_type(content_type: str | bytes | None) -> str:
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return (content_type or "").split(";")[0].strip().lower()


def _not_json(body: bytes, media: str) -> str | None:
    """ "non-JSON response (<type>)" when the body is a web page or declared as neither JSON nor text."""
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
            resp = await self._client.post(
                url, content=body, headers={"Content-Type": "application/json"}, timeout=timeout
            )
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
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), limits=httpx.Limits(max_connections=max_connections)
        )
        return _HttpxTransport(client, headers, owned=True)
    return _Http1Transport(url, headers)


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
            _HttpxTransport(client, headers, owned=False)
            if client is not None
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

    def cache_key(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], params: dict[str, Any] | None = None
    ) -> str:
        c = self.candidate
        return self.cache.key(c.base_url, c.model, {**c.params, **(params or {})}, messages, tools, self._key)

    def _stopped(self, problem: str | None, attempts: int, calls: int) -> ReplayError:
        reason = f"endpoint unusable ({self.guard.reason})"
        if problem is None:
            return ReplayError(self.redact(f"stopped: {reason}"), attempts, calls)
        if problem == self.guard.reason:  # this attempt's failure made it unusable
            return ReplayError(self.redact(problem), attempts, calls)
        return ReplayError(
            self.redact(f"{problem} after {attempts} attempt{'s' * (attempts != 1)}; {reason}"), attempts, calls
        )

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], params: dict[str, Any] | None = None
    ) -> CompletionResult:
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
        body = _json_body(payload)
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
                        raise ReplayError(
                            f"deadline exceeded ({problem} on attempt {attempt})", attempt, calls
                        ) from None
                    await asyncio.sleep(delay)
                continue
            except DeadlineExceeded:
                raise ReplayError(
                    "deadline exceeded" + (f" (after {problem})" if calls else ""), attempt - 1, calls
                ) from None
            except ReplayError as e:
                raise ReplayError(self.redact(e.reason), attempts=attempt, http_calls=calls) from None
            usage = _usage(data)
            self.cache.put(key, raw)  # the body as received: no re-serialisation
            self.counters.completed += 1
            self.counters.prompt_tokens += usage.prompt_tokens
            self.counters.completion_tokens += usage.completion_tokens
            if self.pacing.tokens:
                self.pacing.tokens.spend(max(usage.prompt_tokens + usage.completion_tokens - est_tokens, 0))
            return CompletionResult(
                message=data["choices"][0]["message"], usage=usage, http_calls=calls, attempts=attempt
            )
        raise ReplayError(
            self.redact(f"{problem} after {attempts_allowed} attempts"), attempts=attempts_allowed, http_calls=calls
        )

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


def _json_body(payload: dict[str, Any]) -> bytes:
    """The request body as UTF-8 JSON (orjson; json for what it refuses, e.g. non-string keys)."""
    try:
        return orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(payload, ensure_ascii=False).encode()


def _usage(data: dict[str, Any]) -> Usage:
    u = data.get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0))
