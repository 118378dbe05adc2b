"""Replay at scale: adaptive concurrency, pacing, faults, deadline, modes, dry run (real HTTP, real sqlite)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from deploysim.candidates import Candidate
from deploysim.replay.accounting import dry_run, summarize
from deploysim.replay.cache import ReplayCache, canonical_bytes
from deploysim.replay.engine import ReplayOptions, items_for, replay
from deploysim.replay.pacing import AdaptiveLimiter, TokenBucket
from deploysim.schemas import Conversation, Message
from deploysim_testkit.endpoint import PROFILES, start_in_thread

BASE = PROFILES["steady"]
FAULT_MIX = BASE.model_copy(
    update={
        "name": "fault-mix",
        "fault_mode": "independent",
        "rate_429": 0.20,
        "rate_500": 0.05,
        "rate_timeout": 0.02,
        "rate_malformed": 0.01,
        "retry_after_s": 0.01,
        "hang_s": 3.0,
    }
)
TRUNCATING = BASE.model_copy(update={"name": "truncating", "rate_truncated": 1.0, "fault_mode": "independent"})
SLOW = BASE.model_copy(update={"name": "slow", "latency_ms": 150.0})
THROTTLING = BASE.model_copy(update={"name": "throttling", "rate_429": 1.0, "retry_after_s": 0.0})
PROFILES_UNDER_TEST = {p.name: p for p in [BASE, FAULT_MIX, TRUNCATING, SLOW, THROTTLING]}


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with start_in_thread(profiles=PROFILES_UNDER_TEST) as s:
        yield s


def stats(server: Any, detail: bool = False) -> dict:
    url = server.base_url.removesuffix("/v1") + "/stats" + ("?detail=1" if detail else "")
    return httpx.get(url).json()


def cand(server: Any, model: str, **kw: Any) -> Candidate:
    return Candidate(**{"name": f"c-{model}", "base_url": server.base_url, "model": model, "concurrency": 16, **kw})


def chat(cid: str, text: str) -> Conversation:
    return Conversation(
        conversation_id=cid,
        messages=[Message(role="user", content=text), Message(role="assistant", content="Logged answer.")],
    )


def multi_turn(cid: str) -> Conversation:
    return Conversation(
        conversation_id=cid,
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="What is a fjord?"),
            Message(role="assistant", content="A sea inlet."),
            Message(role="user", content="Where are they found?"),
            Message(role="assistant", content="Norway, mostly."),
            Message(role="user", content="Thanks!"),  # not answered in the log: no item in "every" mode
        ],
    )


# ---------------------------------------------------------------------------- pacing units


def test_aimd_limiter_halves_once_per_round_trip_and_recovers_additively() -> None:
    async def go() -> None:
        lim = AdaptiveLimiter(initial=16, maximum=16, minimum=2)
        async with lim.slot() as e1, lim.slot() as e2:
            assert lim.in_flight == 2
            lim.throttled(e1)
            lim.throttled(e2)  # same congestion episode: ignored
        assert lim.limit == 8 and lim.cuts == 1
        async with lim.slot() as e3:
            lim.throttled(e3)
        async with lim.slot() as e4:
            lim.throttled(e4)
        assert lim.limit == 2  # floor
        async with lim.slot() as e5:
            lim.throttled(e5)
        assert lim.limit == 2
        for _ in range(3):
            lim.succeeded()
        assert int(lim.limit) == 3  # about +1 per window of `limit` successes (2 + 1/2 + 1/2.5 + 1/2.9)
        for _ in range(1000):
            lim.succeeded()
        assert lim.limit == 16  # never above the maximum

    asyncio.run(go())


def test_limiter_bounds_requests_in_flight() -> None:
    async def go() -> int:
        lim = AdaptiveLimiter(initial=3)
        peak = 0

        async def job() -> None:
            nonlocal peak
            async with lim.slot():
                peak = max(peak, lim.in_flight)
                await asyncio.sleep(0)
                await asyncio.sleep(0)

        await asyncio.gather(*(job() for _ in range(30)))
        return peak

    assert asyncio.run(go()) == 3


def test_token_bucket_accounting() -> None:
    async def go() -> tuple[TokenBucket, TokenBucket]:
        b = TokenBucket(per_minute=600)
        await b.take(100)
        b.spend(50)
        big = TokenBucket(per_minute=600)
        await big.take(10_000)  # capped at the capacity: never waits forever
        return b, big

    b, big = asyncio.run(go())
    assert b.capacity == 600 and 450 <= b.level < 460  # 600 - 100 - 50 (+ a few ms of refill)
    assert big.level < 1
    with pytest.raises(ValueError):
        TokenBucket(0)


# ---------------------------------------------------------------------------- modes and dry run


def test_modes_last_and_every(server: Any, tmp_path: Path) -> None:
    convs = [multi_turn("m1"), chat("c1", "How do tides work?")]
    assert [(i.conv.conversation_id, i.user_turn) for i in items_for(convs, "last")] == [("m1", 5), ("c1", 0)]
    every = items_for(convs, "every")
    assert [(i.conv.conversation_id, i.user_turn) for i in every] == [("m1", 1), ("m1", 3), ("c1", 0)]
    assert [m.content for m in every[1].logged] == ["Norway, mostly."]
    recs = replay(convs, cand(server, "steady"), tmp_path / "c.sqlite", options=ReplayOptions(mode="every"))
    assert [(r.conversation_id, r.user_turn, r.status) for r in recs] == [
        ("m1", 1, "ok"),
        ("m1", 3, "ok"),
        ("c1", 0, "ok"),
    ]
    with pytest.raises(ValueError, match="unknown replay mode"):
        items_for(convs, "some")  # type: ignore[arg-type]


def test_agent_conversations_start_first_and_records_keep_input_order(server: Any, tmp_path: Path) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    convs = [chat(f"c{i}", f"Tell me a fact about the number {i}.") for i in range(4)]
    for i in (1, 3):  # tools offered: possibly several requests in a row, so started first
        convs[i] = convs[i].model_copy(update={"tools": [tool]})
    call = {"id": "w1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}
    logged_chain = [  # the logged turn took three model steps: the longest chain starts first of all
        Message(role="user", content="Weather in Oslo, twice please."),
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", content="rain", tool_call_id="w1", name="get_weather"),
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", content="still rain", tool_call_id="w1", name="get_weather"),
        Message(role="assistant", content="Rain, and rain."),
    ]
    convs.append(Conversation(conversation_id="c4", messages=logged_chain, tools=[tool]))
    started: list[int] = []
    frozen: list[int] = []  # objects out of the collector's reach while the replay runs

    def on_record(i: int, r: Any) -> None:
        started.append(i)
        frozen.append(gc.get_freeze_count())

    recs = replay(convs, cand(server, "steady", concurrency=1), tmp_path / "c.sqlite", on_record=on_record)
    assert started == [4, 1, 3, 0, 2]
    assert min(frozen) > 0
    assert [r.conversation_id for r in recs] == ["c0", "c1", "c2", "c3", "c4"] and all(r.status == "ok" for r in recs)
    assert gc.get_freeze_count() == 0  # what run_async froze for the run is back in the collector's care


def test_canonical_bytes_are_the_json_modules_bytes() -> None:
    """Cache keys hash canonical_bytes (orjson): the same bytes json.dumps(sort_keys, compact,
    ensure_ascii=False) writes, so caches written before stay valid; what orjson refuses falls back."""
    payloads: list[Any] = [
        {"b": 1, "a": [True, None, 0.5, -3], "é": "naïve ✓ 日本語 \u2028", "ctl": 'tab\t nl\n \x00 \x7f "q" \\'},
        {"messages": [{"role": "user", "content": "hi"}], "tools": [], "params": {"temperature": 0.7, "seed": 7}},
        {1: "int key"},  # orjson refuses non-string keys: json's bytes
        {"big": 2**70},  # past 64 bits: json's bytes
    ]
    for p in payloads:
        assert canonical_bytes(p) == json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_dry_run_estimates_and_sees_the_cache(server: Any, tmp_path: Path) -> None:
    convs = [chat(f"d{i}", f"Explain compound interest, case {i}") for i in range(10)]
    opts = ReplayOptions(price_prompt_per_mtok=1000.0, price_completion_per_mtok=2000.0)
    c = cand(server, "steady")
    before = stats(server)["total"]
    with ReplayCache(tmp_path / "c.sqlite") as cache:
        est = dry_run(convs, c, cache, opts)
    assert stats(server)["total"] == before  # a dry run makes no call
    assert (est.items, est.calls, est.cached_calls) == (10, 10, 0)
    assert est.prompt_tokens > 0 and est.cost_usd == pytest.approx(
        (est.prompt_tokens * 1000 + est.completion_tokens * 2000) / 1e6
    )
    recs = replay(convs[:4], c, tmp_path / "c.sqlite", options=opts)
    with ReplayCache(tmp_path / "c.sqlite") as cache:
        est2 = dry_run(convs, c, cache, opts)
    assert (est2.calls, est2.cached_calls) == (6, 4)
    s = summarize(recs, opts)
    assert s["prompt_tokens"] == sum(r.usage.prompt_tokens for r in recs) > 0
    assert s["cost_usd"] == pytest.approx((s["prompt_tokens"] * 1000 + s["completion_tokens"] * 2000) / 1e6, abs=1e-6)


# ---------------------------------------------------------------------------- reliability


def test_fault_mix_every_conversation_accounted_no_duplicate_completed_calls(server: Any, tmp_path: Path) -> None:
    """20% 429, 5% 5xx, 2% timeouts, 1% malformed, drawn afresh on every attempt."""
    convs = [chat(f"f{i}", f"Give me advice on houseplant number {i}") for i in range(300)]
    c = cand(server, "fault-mix", timeout_s=1.5, max_retries=8, concurrency=32)  # far above a normal answer
    cache_path = tmp_path / "c.sqlite"
    before = stats(server, detail=True)["served"]
    recs = replay(convs, c, cache_path)
    assert [r.conversation_id for r in recs] == [cv.conversation_id for cv in convs]  # none lost, none twice
    assert all(r.status == "ok" or (r.error and "after 9 attempts" in r.error) for r in recs)
    assert sum(r.status == "ok" for r in recs) >= 295
    assert sum(r.attempts for r in recs) > len(recs)  # faults happened and were retried
    after = stats(server, detail=True)["served"]
    new = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
    assert set(new.values()) == {1}  # every completed call was made exactly once
    ok = sum(r.status == "ok" for r in recs)
    assert len(new) == ok
    with ReplayCache(cache_path) as cache:
        assert len(cache) == ok
    # A second run is served from the cache: not one more completed call.
    again = replay(convs, c, cache_path)
    assert [r.turn for r in again if r.status == "ok"] == [r.turn for r in recs if r.status == "ok"]
    assert stats(server, detail=True)["served"] == after


def test_truncated_bodies_exhaust_retries_with_reason(server: Any, tmp_path: Path) -> None:
    [rec] = replay([chat("t1", "Hello there")], cand(server, "truncating", max_retries=2), tmp_path / "c.sqlite")
    assert rec.status == "error" and rec.error == "malformed JSON response after 3 attempts" and rec.http_calls == 3


def test_throttling_cuts_concurrency(server: Any, tmp_path: Path) -> None:
    from deploysim.replay.client import ChatClient
    from deploysim.replay.engine import replay_items, run_async
    from deploysim.replay.pacing import Pacing

    convs = [chat(f"th{i}", f"Tell me about comets, case {i}") for i in range(40)]
    c = cand(server, "throttling", concurrency=32)

    async def go() -> tuple[list, AdaptiveLimiter]:
        with ReplayCache(tmp_path / "c.sqlite") as cache:
            lim = AdaptiveLimiter(32, 32, 1)
            async with ChatClient(c, cache, pacing=Pacing(lim)) as client:
                recs = await replay_items(items_for(convs), c, cache, client=client)
            return recs, lim

    recs, lim = run_async(go())
    assert all(r.status == "ok" and r.attempts == 2 for r in recs)
    assert lim.cuts >= 1 and lim.limit < 32


def test_deadline_ends_remaining_items_with_reason(server: Any, tmp_path: Path) -> None:
    convs = [chat(f"dl{i}", f"What is the capital of country {i}?") for i in range(40)]
    recs = replay(
        convs, cand(server, "slow", concurrency=2), tmp_path / "c.sqlite", options=ReplayOptions(deadline_s=0.4)
    )
    assert [r.conversation_id for r in recs] == [cv.conversation_id for cv in convs]
    errors = [r for r in recs if r.status == "error"]
    assert errors, "40 items at 150 ms, 2 at a time, cannot finish in 0.4 s"
    assert all(r.error.startswith("deadline exceeded") for r in errors)
    assert all(r.turn and r.turn[-1].content for r in recs if r.status == "ok")


def test_requests_per_minute_bucket_is_applied(server: Any, tmp_path: Path) -> None:
    from deploysim.replay.client import ChatClient
    from deploysim.replay.engine import _pacing, replay_items, run_async

    convs = [chat(f"rpm{i}", f"Name a bird, case {i}") for i in range(5)]
    c = cand(server, "steady")
    opts = ReplayOptions(requests_per_minute=6000, tokens_per_minute=1_000_000)

    async def go() -> tuple[list, Any]:
        with ReplayCache(tmp_path / "c.sqlite") as cache:
            async with ChatClient(c, cache, pacing=_pacing(c, opts, None)) as client:
                return await replay_items(items_for(convs), c, cache, opts, client=client), client.pacing

    recs, pacing = run_async(go())
    assert all(r.status == "ok" for r in recs)
    assert pacing.requests.taken == 5  # one per request
    assert pacing.tokens.taken >= sum(r.usage.prompt_tokens + r.usage.completion_tokens for r in recs)


def test_cache_checkpoints_in_the_background_and_truncates_its_log_on_close(tmp_path: Path, monkeypatch) -> None:
    import time

    monkeypatch.setattr(ReplayCache, "CHECKPOINT_EVERY_S", 0.05)
    path = tmp_path / "c.sqlite"
    cache = ReplayCache(path)
    for i in range(300):
        cache.put(f"k{i}", {"choices": [{"message": {"role": "assistant", "content": "x" * 500}}], "i": i})
    deadline = time.monotonic() + 10
    # the checkpointer copies the log into the database file while the writer only appends to the log
    while path.stat().st_size < 150_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= 150_000
    cache.close()
    cache.close()  # a second close is harmless
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with ReplayCache(path) as again:
        assert len(again) == 300 and again.get("k299")["i"] == 299
