"""The replay engine: send logged conversation prefixes to a candidate, simulate tools.

Every successful response is cached (sqlite, keyed by the canonical request), so a
re-run makes no HTTP calls. Tool calls are answered from the production log when the
candidate asks for the same tool with the same arguments, else with a fixed
"unavailable" result; the provenance of each tool result is recorded.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from deploysim.candidates import Candidate
from deploysim.schemas import Conversation, Message, ReplayRecord, ToolCall, ToolResultRecord, Usage

UNAVAILABLE = json.dumps({"error": "tool unavailable in simulation"})
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
RETRY_AFTER_CAP_S = 60.0  # never sleep longer than this on a server's say-so

Progress = Callable[[int, int], None]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------- cache


class ReplayCache:
    """Persistent cache of successful chat-completion responses (sqlite, WAL)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL NOT NULL)")

    @staticmethod
    def key(model: str, params: dict[str, Any], messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        payload = {"model": model, "params": params, "messages": messages, "tools": tools or []}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)",
                (key, json.dumps(response), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReplayCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- client


class ReplayError(Exception):
    """A request that could not be completed; str() is a short reason, never containing the key."""

    def __init__(self, reason: str, attempts: int = 0, http_calls: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.http_calls = http_calls


@dataclass
class CompletionResult:
    message: dict[str, Any]  # the assistant message, as the server returned it
    usage: Usage = field(default_factory=Usage)
    http_calls: int = 0
    cached: bool = False
    attempts: int = 0


class _Retryable(Exception):
    """One failed attempt worth retrying; `delay` is a server-requested wait, if any."""

    def __init__(self, problem: str, delay: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.delay = delay


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): Retry-After if given, else full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["retry-after"])
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to backoff


def _server_message(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)[:200]
    except (ValueError, AttributeError):
        pass
    return resp.text[:200].strip() or resp.reason_phrase


def _valid_completion(data: Any) -> bool:
    try:
        return isinstance(data["choices"][0]["message"], dict)
    except (KeyError, IndexError, TypeError):
        return False


class ChatClient:
    """Async OpenAI-compatible chat client for one candidate, with caching and retries."""

    def __init__(self, candidate: Candidate, cache: ReplayCache, client: httpx.AsyncClient | None = None) -> None:
        self.candidate = candidate
        self.cache = cache
        self._key = candidate.api_key()  # raises naming the env var (not the value) if unset
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(candidate.timeout_s),
            limits=httpx.Limits(max_connections=max(candidate.concurrency, 1)),
        )
        if client is not None:
            self._client.headers.update(headers)
        self.url = candidate.base_url.rstrip("/") + "/chat/completions"

    def redact(self, text: str) -> str:
        """Text with the API key (if any) masked."""
        return text.replace(self._key, "***") if self._key else text

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> CompletionResult:
        """The assistant's reply to `messages`, from cache or over HTTP (retrying transient failures)."""
        c = self.candidate
        key = self.cache.key(c.model, c.params, messages, tools)
        if (hit := self.cache.get(key)) is not None:
            return CompletionResult(message=hit["choices"][0]["message"], usage=_usage(hit), cached=True)

        body: dict[str, Any] = {"model": c.model, "messages": messages, **c.params}
        if tools:
            body["tools"] = tools
        attempts_allowed = c.max_retries + 1
        problem = "no attempt made"
        for attempt in range(1, attempts_allowed + 1):
            try:
                data = await self._attempt(body)
            except _Retryable as r:
                problem = r.problem
                if attempt < attempts_allowed:
                    await asyncio.sleep(backoff_delay(attempt, r.delay))
                continue
            except ReplayError as e:
                raise ReplayError(self.redact(e.reason), attempts=attempt, http_calls=attempt) from None
            self.cache.put(key, data)
            return CompletionResult(message=data["choices"][0]["message"], usage=_usage(data), http_calls=attempt, attempts=attempt)
        raise ReplayError(self.redact(f"{problem} after {attempts_allowed} attempts"), attempts=attempts_allowed, http_calls=attempts_allowed)

    async def _attempt(self, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP attempt: the parsed body, or _Retryable / terminal ReplayError."""
        try:
            resp = await self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise _Retryable("timeout") from None
        except httpx.TransportError:
            raise _Retryable("connection error") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}", _retry_after(resp))
        if resp.status_code >= 400:
            raise ReplayError(f"HTTP {resp.status_code}: {_server_message(resp)}")
        try:
            data = resp.json()
        except ValueError:
            raise _Retryable("malformed JSON response") from None
        if not _valid_completion(data):
            raise _Retryable("malformed JSON response")
        return data


def _usage(data: dict[str, Any]) -> Usage:
    u = data.get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0))


# ---------------------------------------------------------------------------- tool simulation


def _canon_args(arguments: Any) -> Any:
    """Arguments for comparison: parsed JSON, or the raw string if unparsable."""
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


class ToolSimulator:
    """Answers tool calls from a conversation's logged turn (same name and arguments)."""

    def __init__(self, logged_turn: list[Message]) -> None:
        results = {m.tool_call_id: m.content for m in logged_turn if m.role == "tool" and m.tool_call_id}
        self._recorded = [
            (c.name, _canon_args(c.arguments), results[c.id])
            for m in logged_turn
            if m.role == "assistant"
            for c in m.tool_calls
            if c.id in results
        ]
        self._used: set[int] = set()

    def answer(self, name: str, arguments: str) -> tuple[str, str]:
        """(content, source) for a call; prefers a not-yet-used recorded result."""
        args = _canon_args(arguments)
        matches = [i for i, (n, a, _) in enumerate(self._recorded) if n == name and a == args]
        if not matches:
            return UNAVAILABLE, "unavailable"
        i = next((i for i in matches if i not in self._used), matches[0])
        self._used.add(i)
        return self._recorded[i][2] or "", "recorded"


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


# ---------------------------------------------------------------------------- replay


async def replay_one(conv: Conversation, client: ChatClient, max_steps: int = 8) -> ReplayRecord:
    """Replay one conversation's last user turn through the agent loop; errors become a record."""
    rec = ReplayRecord(candidate=client.candidate.name, conversation_id=conv.conversation_id, status="ok")
    messages = [m.to_openai() for m in conv.prefix()]
    tools = conv.tools
    sim = ToolSimulator(conv.logged_turn())
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
            for call in asst.tool_calls:
                content, source = sim.answer(call.name, call.arguments)
                tool_msg = Message(role="tool", content=content, tool_call_id=call.id, name=call.name)
                rec.turn.append(tool_msg)
                messages.append(tool_msg.to_openai())
                rec.tool_results.append(
                    ToolResultRecord(tool_call_id=call.id, name=call.name, arguments=call.arguments, source=source, content=content)
                )
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


async def replay_conversations(
    conversations: list[Conversation],
    candidate: Candidate,
    cache: ReplayCache,
    max_steps: int = 8,
    progress: Progress | None = None,
) -> list[ReplayRecord]:
    """Replay all conversations with bounded concurrency; records in input order."""
    sem = asyncio.Semaphore(max(candidate.concurrency, 1))
    done, total = 0, len(conversations)

    async with ChatClient(candidate, cache) as client:

        async def run(conv: Conversation) -> ReplayRecord:
            nonlocal done
            async with sem:
                rec = await replay_one(conv, client, max_steps)
            done += 1
            if progress:
                progress(done, total)
            return rec

        return list(await asyncio.gather(*(run(c) for c in conversations)))


def replay(
    conversations: list[Conversation],
    candidate: Candidate,
    cache_path: Path,
    max_steps: int = 8,
    progress: Progress | None = None,
) -> list[ReplayRecord]:
    """Synchronous wrapper around replay_conversations with a cache at cache_path."""
    with ReplayCache(cache_path) as cache:
        return asyncio.run(replay_conversations(conversations, candidate, cache, max_steps, progress))
