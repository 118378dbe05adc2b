"""A replay's accounting: what it cost, what it will cost, and how to say so.

summarize counts a run's records (items, answers from the cache or over HTTP, tokens, cost at the
options' prices, tool result sources, top errors, failure classes, whether the endpoint was
unusable); summary_lines turns a summary into human lines; cost_usd prices tokens; dry_run
estimates calls, tokens and cost (DryRun) before spending them, counting items whose first request
is already cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploysim.candidates import Candidate
from deploysim.errors import MissingKey
from deploysim.replay.cache import ReplayCache, canonical_json
from deploysim.replay.engine import ReplayOptions, items_for
from deploysim.replay.failures import endpoint_unusable, failure_classes
from deploysim.schemas import Conversation, Message, ReplayRecord


def cost_usd(prompt_tokens: int, completion_tokens: int, options: ReplayOptions) -> float:
    return (prompt_tokens * options.price_prompt_per_mtok + completion_tokens * options.price_completion_per_mtok) / 1e6


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Human lines for a summary (from summarize or pipeline.replay_summary): where the answers came
    from, then one line per failure class with its count and an example."""
    n = summary.get("items", summary.get("replayed", 0))
    lines = [
        f"{summary.get('cached_answers', 0)} of {summary.get('answers', 0)} answers from the cache, "
        f"{summary.get('http_calls', 0)} HTTP calls; {summary.get('ok', 0)} of {n} items replayed"
    ]
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
    return (
        sum(len(m.content or "") + sum(len(c.arguments) + len(c.name) for c in m.tool_calls) for m in messages) // 4 + 1
    )


def dry_run(
    conversations: list[Conversation], candidate: Candidate, cache: ReplayCache, options: ReplayOptions | None = None
) -> DryRun:
    """Estimate calls, tokens and cost before spending them.

    Each item is assumed to take as many model calls as production's logged turn did
    (at least one), with production's prompts and answer lengths; an item whose first
    request is already cached is counted as cached.
    """
    opts = options or ReplayOptions()
    items = items_for(conversations, opts.mode)
    try:
        credential = candidate.api_key()
    except MissingKey:  # no key: nothing can be known to be cached for it
        credential = None
    readable = opts.read_cache and (credential is not None or not candidate.api_key_env)
    calls = cached = prompt = completion = 0
    for it in items:
        prefix, logged = it.prefix, it.logged
        steps: list[int | None] = [*[i for i, m in enumerate(logged) if m.role == "assistant"][: opts.max_steps]] or [
            None
        ]
        key = cache.key(
            candidate.base_url,
            candidate.model,
            candidate.params,
            [m.to_openai() for m in prefix],
            it.conv.tools,
            credential,
        )
        first_cached = readable and key in cache
        for j, idx in enumerate(steps):
            if j == 0 and first_cached:
                cached += 1
                continue
            calls += 1
            before = prefix + (logged[:idx] if idx is not None else [])
            prompt += _tok(before) + len(canonical_json(it.conv.tools)) // 4
            completion += _tok([logged[idx]]) if idx is not None else min(candidate.max_tokens, 64)
    return DryRun(
        items=len(items),
        calls=calls,
        cached_calls=cached,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=round(cost_usd(prompt, completion, opts), 6),
    )
