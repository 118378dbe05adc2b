"""`deploysim replay LOGS --base-url URL --model ID --out FILE`: replay a log file outside the pipeline.

Same engine, cache and accounting as the pipeline's replay step, for quick checks of a new
endpoint. The logs are redacted (deploysim.privacy.redaction) before anything is sent, unless --no-redact
is given; what the models wrote is redacted before it is written, and error reasons always are.
The output file (JSONL, one ReplayRecord per line) is also the journal: records are
appended as items finish, and a run started again with the same settings keeps the finished
records and replays only the rest (completed calls come from the persistent cache; --fresh reads
neither). Exit code: 0 every item replayed, 1 some items ended in an error, 2 the run could not start
or stopped because the endpoint is unusable (DNS, HTTP 401/403, refused or silent for too long).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from deploysim import settings
from deploysim.schemas import ReplayRecord


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_replay_command(sub: Any) -> None:
    """Register the `replay` subcommand on an argparse subparsers object."""
    r = sub.add_parser("replay", help="replay a log file against an OpenAI-compatible endpoint (outside the pipeline)")
    r.add_argument("logs", help="log file, directory or glob (OpenAI chat JSONL or the other ingest formats)")
    r.add_argument("--base-url", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8765/v1")
    r.add_argument("--model", required=True)
    r.add_argument("--out", required=True, help="JSONL output, one replay record per line (also the resume journal)")
    r.add_argument("--api-key-env", help="name of the env var holding the API key (never the key itself)")
    r.add_argument("--mode", choices=["last", "every"], default="last", help="replay the last user turn or every one")
    r.add_argument("--max-steps", type=int, default=8, help="model calls per agent rollout")
    r.add_argument("--concurrency", type=int, default=16, help="starting and maximum requests in flight")
    r.add_argument("--min-concurrency", type=int, default=1)
    r.add_argument("--rpm", type=float, help="requests-per-minute limit")
    r.add_argument("--tpm", type=float, help="tokens-per-minute limit")
    r.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    r.add_argument("--deadline", type=float, help="overall deadline, seconds")
    r.add_argument("--max-retries", type=int, default=5)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--max-tokens", type=int, default=512)
    r.add_argument("--cache", help="replay cache (default: <DEPLOYSIM_HOME>/raw/cache/replay.sqlite, owner-only)")
    r.add_argument("--tool-sim-model", help="model that simulates tool results for unrecorded calls")
    r.add_argument("--tool-sim-base-url", help="its base URL (default: --base-url)")
    r.add_argument("--tool-sim-api-key-env", help="its key's env var (default: --api-key-env)")
    r.add_argument("--price-in", type=float, default=0.0, help="USD per million prompt tokens")
    r.add_argument("--price-out", type=float, default=0.0, help="USD per million completion tokens")
    r.add_argument("--dry-run", action="store_true", help="estimate calls, tokens and cost; make no call")
    r.add_argument(
        "--fresh",
        action="store_true",
        help="read nothing from the cache or from --out: every answer over HTTP (answers are still cached)",
    )
    r.add_argument(
        "--no-redact",
        action="store_true",
        help="send the logs as they are (default: redacted first, like the pipeline)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=cmd_replay)


def _settings_key(a: argparse.Namespace, credential_tag: str = "") -> str:
    """What must match for records in --out to be reused on resume."""
    parts = [
        a.base_url,
        a.model,
        a.temperature,
        a.max_tokens,
        a.mode,
        a.max_steps,
        a.tool_sim_model,
        a.tool_sim_base_url,
        bool(a.no_redact),
        credential_tag,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _load_journal(out: Path, key: str) -> dict[tuple[str, int | None], ReplayRecord]:
    """Finished records from a previous run with the same settings (a torn last line is dropped)."""
    meta = out.with_name(out.name + ".resume")
    if not out.exists() or not meta.exists() or meta.read_text().strip() != key:
        return {}
    kept: dict[tuple[str, int | None], ReplayRecord] = {}
    with out.open("rb") as f:
        for line in f:
            try:
                rec = ReplayRecord.model_validate_json(line)
            except ValueError:
                continue  # a line cut by a kill
            if rec.status == "ok":  # errors are tried again, like failed calls (never cached)
                kept[(rec.conversation_id, rec.user_turn)] = rec
    return kept


def _write_all(out: Path, records: list[ReplayRecord]) -> None:
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")
    os.replace(tmp, out)


class _Progress:
    def __init__(self, client: Any, quiet: bool, already: int) -> None:
        self.client, self.quiet, self.already = client, quiet, already
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 2.0 and done != total):
            return
        self.last = now
        c = self.client.counters
        rate = done / max(now - self.t0, 1e-9)
        _err(
            f"  replayed {done + self.already}/{total + self.already} · {rate:.0f} items/s · {c.requests} requests "
            f"({c.cached} cached, {c.retries} retries, {c.throttled} throttled) · concurrency limit "
            f"{int(self.client.pacing.limiter.limit)} · {c.prompt_tokens + c.completion_tokens} tokens"
        )


def cmd_replay(a: argparse.Namespace) -> int:
    from deploysim.candidates import Candidate
    from deploysim.logs.ingest import ingest_files, input_files
    from deploysim.pipeline import redact_outputs, resolve_inputs
    from deploysim.privacy.policies import RedactConfig
    from deploysim.privacy.redaction import iter_redacted
    from deploysim.replay.accounting import dry_run, summarize, summary_lines
    from deploysim.replay.cache import ReplayCache, default_cache_path
    from deploysim.replay.engine import ReplayOptions, items_for, make_client, replay_items, run_async

    cand = Candidate(
        name="replay",
        base_url=a.base_url,
        model=a.model,
        api_key_env=a.api_key_env,
        temperature=a.temperature,
        max_tokens=a.max_tokens,
        concurrency=a.concurrency,
        timeout_s=a.timeout,
        max_retries=a.max_retries,
    )
    sim = None
    if a.tool_sim_model:
        sim = cand.model_copy(
            update={
                "name": "tool-simulator",
                "model": a.tool_sim_model,
                "base_url": a.tool_sim_base_url or a.base_url,
                "api_key_env": a.tool_sim_api_key_env or a.api_key_env,
            }
        )
    opts = ReplayOptions(
        mode=a.mode,
        max_steps=a.max_steps,
        requests_per_minute=a.rpm,
        tokens_per_minute=a.tpm,
        deadline_s=a.deadline,
        min_concurrency=a.min_concurrency,
        tool_simulator=sim,
        price_prompt_per_mtok=a.price_in,
        price_completion_per_mtok=a.price_out,
        read_cache=not a.fresh,
    )
    if not a.dry_run:
        cand.api_key()  # fail before any work if the key's env var is unset (names the variable only)
    ingested = ingest_files(input_files(resolve_inputs(a.logs)))
    for q in ingested.quarantine[:5]:
        _err(f"  quarantined {q.source_file}:{q.line}: {q.reason}")
    convs = ingested.conversations
    if not a.no_redact:  # nothing personal goes to the endpoint unless asked for explicitly
        convs = [c for c, _ in iter_redacted(convs, RedactConfig.from_settings(settings.load())) if c is not None]
    by_id = {c.conversation_id: c for c in convs}
    items = items_for(convs, a.mode)
    cache_path = Path(a.cache) if a.cache else default_cache_path("replay")
    _err(
        f"deploysim replay: {len(convs)} conversations ({len(ingested.quarantine)} quarantined), {len(items)} items, "
        f"mode {a.mode}, model {a.model} at {a.base_url}, logs {'NOT redacted' if a.no_redact else 'redacted'}"
    )

    with ReplayCache(cache_path) as cache:
        if a.dry_run:
            est = dry_run(convs, cand, cache, opts)
            print(json.dumps({"dry_run": est.__dict__}, indent=2))
            return 0
        credential = cand.api_key()
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        key = _settings_key(a, cache.credential_tag(credential))
        kept = {} if a.fresh else _load_journal(out, key)
        finished = {
            (it.conv.conversation_id, it.user_turn): kept[k]
            for it in items
            if (k := (it.conv.conversation_id, it.user_turn)) in kept
        }
        todo = [it for it in items if (it.conv.conversation_id, it.user_turn) not in finished]
        if finished:
            _err(f"  resuming: {len(finished)} items already finished in {out}, {len(todo)} to go")
        _write_all(out, list(finished.values()))  # drops a torn line and stale records
        out.with_name(out.name + ".resume").write_text(key)

        journal: TextIO = out.open("a")

        def on_record(_: int, rec: ReplayRecord) -> None:
            if not a.no_redact:
                redact_outputs([rec], by_id)  # what the models wrote, before it is written anywhere
            journal.write(rec.model_dump_json() + "\n")
            journal.flush()  # in the OS once written: survives the process being killed

        async def go() -> list[ReplayRecord]:
            client = make_client(cand, cache, opts)
            async with client:
                return await replay_items(
                    todo, cand, cache, opts, _Progress(client, a.quiet, len(finished)), on_record, client=client
                )

        try:
            new = run_async(go())
        finally:
            journal.close()
    by_key = finished | {(r.conversation_id, r.user_turn): r for r in new}
    records = [by_key[(it.conv.conversation_id, it.user_turn)] for it in items]
    _write_all(out, records)  # final file: input order, one record per item
    summary = summarize(records, opts)
    for line in summary_lines(summary):
        _err(f"  {line}")
    print(json.dumps({"out": str(out), **summary}, indent=2))
    if summary["endpoint_unusable"]:
        return 2
    return 0 if summary["errors"] == 0 else 1
