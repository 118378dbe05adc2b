"""The replay engine: send logged conversation prefixes to a candidate, answer its tool calls.

ReplayOptions says how to replay; items_for cuts conversations into ReplayItems (the last user
turn, or every one); replay_item runs one through the agent loop (tool calls answered by
deploysim.replay.toolsim: recorded / simulated / error) and always ends in a record, a response or
a terminal error with its reason; replay_items / replay_conversations / replay run many with
adaptive concurrency through one ChatClient (make_client), stop taking work once the endpoint is
unusable or the deadline has passed, and run_async runs it all on a fresh event loop that Ctrl-C or
SIGTERM stops cleanly (_stoppable, _stop_handlers). The client, cache, pacing, failure classes and
accounting live in the sibling modules.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deploysim import interrupts
from deploysim.candidates import Candidate
from deploysim.replay.cache import ReplayCache
from deploysim.replay.client import ChatClient, EndpointGuard, ReplayError
from deploysim.replay.pacing import AdaptiveLimiter, Pacing, TokenBucket
from deploysim.replay.toolsim import ToolResolver
from deploysim.schemas import Conversation, Message, ReplayRecord, ToolCall

Progress = Callable[[int, int], None]
Mode = Literal["last", "every"]


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
    return Message(
        role="assistant",
        content=content if isinstance(content, str) or content is None else json.dumps(content),
        tool_calls=calls,
    )


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


def _expected_steps(item: ReplayItem) -> int:
    """Requests a replay of item will likely make: the logged turn's model steps when tools are offered."""
    if not item.conv.tools:
        return 1
    return 1 + max(sum(m.role == "assistant" for m in item.logged), 1)


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
    rec = ReplayRecord(
        candidate=client.candidate.name, conversation_id=conv.conversation_id, status="ok", user_turn=item.user_turn
    )
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
    return ChatClient(
        candidate,
        cache,
        pacing=_pacing(candidate, opts, deadline),
        guard=EndpointGuard(opts.refused_limit_s, opts.silent_limit_s),
        read_cache=opts.read_cache,
    )


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
    # longest first: agent conversations (tools offered) make several requests in a row, as many as the
    # logged turn's model steps, so starting the longest first keeps their chains off the end of the run
    # (records stay in input order)
    for i in sorted(range(total), key=lambda i: -_expected_steps(items[i])):
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
                rec = ReplayRecord(
                    candidate=candidate.name,
                    conversation_id=item.conv.conversation_id,
                    status="error",
                    error=f"not attempted: endpoint unusable ({client.guard.reason})",
                    user_turn=item.user_turn,
                )
            elif deadline is not None and time.monotonic() >= deadline:
                rec = ReplayRecord(
                    candidate=candidate.name,
                    conversation_id=item.conv.conversation_id,
                    status="error",
                    error="deadline exceeded before replay started",
                    user_turn=item.user_turn,
                )
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
    interrupted; Python's raises KeyboardInterrupt).

    The objects alive at the start (the conversations, mostly) are frozen out of the garbage
    collector until the end: a full collection walking them all stalls every request in flight
    (0.5 s at 20,000 conversations)."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    stopped: list[int] = []
    saved = _stop_handlers()
    gc.freeze()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_stoppable(coro, saved, stopped))
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        gc.unfreeze()
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
    assert task is not None  # called as the runner's main coroutine

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
