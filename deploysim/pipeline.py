"""The steps of a simulation as plain functions over the lake.

Each step reads its inputs from the data directory, does its work through the library,
writes its output and returns metadata (counts). Dagster assets and the CLI call these.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from deploysim import candidates as reg
from deploysim import lake
from deploysim.days import describe as describe_days
from deploysim.estimation import stats
from deploysim.estimation.planner import conversations_to_decide
from deploysim.grading import graders
from deploysim.report import tables
from deploysim.sampling import stratified as sample
from deploysim.schemas import (
    Conversation,
    Grade,
    Message,
    ReplayRecord,
    conversation_from_row,
    conversation_to_row,
)
from deploysim.settings import Settings
from deploysim.settings import load as load_settings

if TYPE_CHECKING:
    from upath import UPath

Progress = Callable[[int, int], None]

RAW_QUARANTINE = "raw/ingest/quarantine.parquet"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of inputs and configuration (used as a data version)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path) and p.is_file():
            with p.open("rb") as f:  # streamed: inputs may be large
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def default_logs() -> str:
    return str(lake.raw_dir() / "logs")


def resolve_inputs(spec: str) -> list[Path]:
    """A file, a directory or a glob (several separated by commas)."""
    out: list[Path] = []
    for part in [s.strip() for s in spec.split(",") if s.strip()]:
        hits = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        if not hits:
            raise FileNotFoundError(f"no log files match {part!r}")
        out += [Path(h) for h in hits]
    return out


# ---- ingest / redact / sample: shared by every candidate ------------------------------


def _conversation_schema():
    import pyarrow as pa

    return pa.schema(
        [(k, pa.string()) for k in ("conversation_id", "topic", "surface", "kind", "messages", "tools", "metadata")]
    )


class _BatchWriter:
    """Rows appended to a Parquet file in batches (bounded memory), moved into place on close."""

    def __init__(self, path: Path, schema, batch: int = 2000) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.schema, self.batch, self.n = path, schema, batch, 0
        self.rows: list[dict[str, Any]] = []
        self.tmp = lake.temp_path(path)
        self.writer = pq.ParquetWriter(self.tmp, schema)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(
            {
                k: (json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v)
                for k, v in row.items()
            }
        )
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.n += len(self.rows)
            self.rows = []

    def close(self) -> None:

        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


RAW_INGEST = "raw/ingest"  # raw/ingest/day=<D>/conversations.parquet and its VERSION; quarantine.parquet
INDEX = "raw/ingest-index.json"  # the log files by day (deploysim.days.LogIndex)


def _ingest_config(fmt: str | None, s: Settings):
    from deploysim.logs.formats.documents import FieldMap

    fields = FieldMap(**s.field_map())
    return fmt or s.log_format or None, fields


def _raw_day(day: str) -> Path:
    return lake.home() / RAW_INGEST / f"day={day}"


def raw_day_version(day: str) -> str | None:
    """The ingest version whose conversations of the day are in the raw zone (None when none are)."""
    p = _raw_day(day) / "VERSION"
    return p.read_text().strip() or None if p.exists() and (p.parent / "conversations.parquet").exists() else None


def _ingest_version(day: str, index, paths: list[Path], fmt: str | None, fields) -> str:
    """A day's ingest version: the contents of the files that hold it, the format and the field map."""
    shas = sorted(index.files[str(p)]["sha"] for p in index.day_files(day, paths))
    return fingerprint("ingest-day", day, shas, fmt, *([fields.describe()] if fields.describe() else []))


def _read_logs(sources, files, fmt, fields, s: Settings, want, write_dir: Path | None, index, counts) -> int:
    """One pass over sources (the log files `files`, or the specs that name them): each conversation
    goes to its day (deploysim.days.day_of); the days in `want` (all when None) are written under
    write_dir as day=<D>.parquet. Updates the index; returns how many took their file's day."""
    from deploysim import days as dd
    from deploysim.logs.ingest import iter_ingest
    from deploysim.schemas import Conversation

    per_file: dict[str, Counter[str]] = {str(f): Counter() for f in files}
    writers: dict[str, _BatchWriter] = {}
    fallback: dict[str, str] = {}
    quarantine = _BatchWriter(lake.home() / RAW_QUARANTINE, _QUARANTINE_SCHEMA) if write_dir else None
    undated = 0
    for item in iter_ingest(sources, fmt, counts=counts, max_message_chars=s.max_message_chars, fields=fields):
        if isinstance(item, Conversation):
            src = counts.files[-1]  # iter_ingest lists each file as it starts reading it
            if src not in fallback:
                fallback[src] = dd.file_day(src)
            day, dated = dd.day_of(item.metadata, fallback[src])
            undated += not dated
            per_file.setdefault(src, Counter())[day] += 1
            if write_dir is not None and (want is None or day in want):
                if day not in writers:
                    writers[day] = _BatchWriter(write_dir / f"day={day}.parquet", _conversation_schema())
                writers[day].add(conversation_to_row(item))
        elif quarantine is not None:
            quarantine.add(item.model_dump())
    for w in writers.values():
        w.close()
    if quarantine is not None:
        quarantine.close()
    for f in files:
        if not index.is_current(f) or set(index.days_of(f)) != set(per_file[str(f)]):
            index.record(f, fingerprint(f), per_file[str(f)])
    return undated


def index_logs(logs: str, fmt: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Bring the log files' index by day up to date (reading only new or changed files) and say, per day,
    the conversations the logs hold and the ingest version they would have."""
    from deploysim import days as dd
    from deploysim.logs.ingest import IngestCounts, input_files

    s = settings or load_settings()
    fmt, fields = _ingest_config(fmt, s)
    paths = input_files(resolve_inputs(logs))
    index = dd.LogIndex.load(lake.home() / INDEX)
    index.keep_only(paths)
    stale = [p for p in paths if not index.is_current(p)]
    if stale:
        _read_logs(stale, stale, fmt, fields, s, None, None, index, IngestCounts())
        index.save()
    return {
        "files": len(paths),
        "read": len(stale),
        "days": {
            d: {"conversations": n, "version": _ingest_version(d, index, paths, fmt, fields)}
            for d, n in index.all_days(paths).items()
        },
    }


def run_ingest(
    logs: str, fmt: str | None = None, settings: Settings | None = None, days: Sequence[str] | None = None
) -> dict[str, Any]:
    """Stream the logs (any supported format; settings.log_format forces one) into the raw zone, one
    folder per day (deploysim.days for the day of a conversation). Only the given days (default: every
    day of the logs) are written, reading only the files that hold them or that are new or changed;
    a day whose files did not change keeps its version and is not read again (`reused`)."""
    from deploysim import days as dd
    from deploysim.logs.ingest import IngestCounts, input_files

    specs = resolve_inputs(logs)
    paths = input_files(specs)  # no log file at all fails here, before anything is written
    s = settings or load_settings()
    fmt, fields = _ingest_config(fmt, s)
    index = dd.LogIndex.load(lake.home() / INDEX)
    index.keep_only(paths)
    want = set(days) if days is not None else None
    stale = [p for p in paths if not index.is_current(p)]
    counts = IngestCounts()
    undated = 0
    todo = sorted(want) if want is not None else list(index.all_days(paths))
    if stale or any(raw_day_version(d) != _ingest_version(d, index, paths, fmt, fields) for d in todo):
        read = [p for p in paths if p in stale or want is None or index.days_of(p) & want]
        tmp = lake.home() / RAW_INGEST / f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.mkdir(parents=True)
        try:
            sources = specs if want is None else read  # specs: skipped files are counted
            undated = _read_logs(sources, read, fmt, fields, s, want, tmp, index, counts) if read else 0
            index.save()
            todo = sorted(want) if want is not None else list(index.all_days(paths))
            for d in todo:
                version = _ingest_version(d, index, paths, fmt, fields)
                if raw_day_version(d) == version:
                    continue
                out = _raw_day(d)
                out.mkdir(parents=True, exist_ok=True)
                src = tmp / f"day={d}.parquet"
                if not src.exists():
                    lake.write_rows(src, [], schema=_conversation_schema())
                os.replace(src, out / "conversations.parquet")
                (out / "VERSION").write_text(version + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    per_day = {}
    for d in todo:
        n = sum(index.files[str(p)]["days"][d] for p in index.day_files(d, paths))
        per_day[d] = {"conversations": n, "version": raw_day_version(d)}
    return counts.as_dict() | {
        "files": [str(p) for p in paths],
        "dated_by_file": undated,
        "days": per_day,
        "data_version": fingerprint(per_day) if len(per_day) != 1 else next(iter(per_day.values()))["version"],
    }


def _quarantine_schema():
    import pyarrow as pa

    return pa.schema([("source_file", pa.string()), ("line", pa.int64()), ("reason", pa.string())])


_QUARANTINE_SCHEMA = _quarantine_schema()


def raw_days() -> list[str]:
    """The days whose ingested conversations are in the raw zone."""
    base = lake.home() / RAW_INGEST
    found = [p.name[4:] for p in base.glob("day=*")] if base.is_dir() else []
    return sorted(d for d in found if raw_day_version(d))


def redact_version(day: str, ingest_version: str, settings: Settings | None = None) -> str:
    """The version a day's redaction has, from its ingest version and the redaction's configuration."""
    from deploysim.privacy.policies import RedactConfig

    config = RedactConfig.from_settings(settings or load_settings())
    # "all-fields": redaction covers every text field since issue 15 (older outputs are stale)
    return fingerprint(
        "redact-day",
        day,
        ingest_version,
        "all-fields",
        config.ner,
        config.ner_model,
        config.policies,
        config.time_granularity,
        config.metadata_allow,
    )


def run_redact(
    purge_raw: bool = False, settings: Settings | None = None, days: Sequence[str] | None = None
) -> dict[str, Any]:
    """Redact the raw zone's days (default: every day ingested) into the lake, batch by batch
    (configuration: RedactConfig.from_settings), one version per day: a day whose ingest version and
    configuration did not change keeps its version and is not redacted again (`reused`)."""
    import pyarrow.parquet as pq

    from deploysim.privacy.policies import RedactConfig
    from deploysim.privacy.redaction import iter_redacted, split_counts

    s = settings or load_settings()
    config = RedactConfig.from_settings(s)
    days = list(days) if days is not None else raw_days()
    if not days:
        raise FileNotFoundError(f"missing lake file: {lake.home() / RAW_INGEST} (materialise its upstream asset first)")
    counts: Counter[str] = Counter()
    per_day: dict[str, dict[str, Any]] = {}
    for day in days:
        ingest_version = raw_day_version(day)
        if ingest_version is None:
            raise FileNotFoundError(
                f"missing lake file: {_raw_day(day) / 'conversations.parquet'} (materialise ingest for {day} first)"
            )
        src = _raw_day(day) / "conversations.parquet"
        version = redact_version(day, ingest_version, s)
        written: dict[str, int | None] = {"n": None}

        def convs(src: Path = src):
            for batch in pq.ParquetFile(src).iter_batches(batch_size=1000):
                for row in batch.to_pylist():
                    yield conversation_from_row(row)

        def write(path: Path, convs=convs, written=written) -> None:  # only when this version is new
            out = _BatchWriter(path, _conversation_schema())
            for red, found in iter_redacted(convs(), config):
                counts.update(found)
                if red is not None:
                    out.add(conversation_to_row(red))
            out.close()
            written["n"] = out.n

        path = lake.write_day_version(REDACTED, day, version, write, inputs={"ingest": ingest_version})
        reused = written["n"] is None
        if reused:
            with lake.parquet_file(path) as f:
                written["n"] = f.metadata.num_rows
        per_day[day] = {"conversations": written["n"], "version": version, "reused": reused, "path": str(path)}
        if purge_raw:
            shutil.rmtree(_raw_day(day), ignore_errors=True)
    dropped = counts.pop("conversations_dropped", 0)
    entities, fields = split_counts(counts)
    one = next(iter(per_day.values())) if len(per_day) == 1 else None
    return {
        "conversations": sum(d["conversations"] for d in per_day.values()),
        "dropped_by_policy": dropped,
        "ner": config.ner,
        "entities": dict(sorted(entities.items())),
        "fields_changed": dict(sorted(fields.items())),
        "reused": all(d["reused"] for d in per_day.values()),
        "days": per_day,
        **({"path": one["path"]} if one else {}),
        "data_version": one["version"] if one else fingerprint({d: v["version"] for d, v in per_day.items()}),
    }


REDACTED = "redacted"  # the redact asset's lake folder
FRAME = "frame"  # the sample's frame: which days (at which redact versions) it was drawn from


def redacted_days(window: int, end: str | None = None) -> dict[str, str]:
    """day -> latest redact version, for the days with a version among the `window` days ending at `end`
    (default: the newest day redacted)."""
    from deploysim import days as dd

    have = lake.days(REDACTED)
    if not have:
        return {}
    return {
        d: v for d in dd.window(end or have[-1], window) if d in have and (v := lake.latest_day_version(REDACTED, d))
    }


def redacted_files(version: str | None = None) -> list[tuple[str | None, UPath]]:
    """(day, file) of the redacted traffic at a version: a frame's days (the sample's window), or, for
    versions from before the traffic had days, the one file (day None). Default: the last frame."""
    version = version or lake.latest_version(FRAME)
    days = lake.version_inputs(FRAME, None, version).get("days") if version else None
    if days:
        return _frame_files(days)
    return [(None, lake.current(REDACTED, version=version))]


def _frame_files(days: dict[str, str]) -> list[tuple[str | None, UPath]]:
    """(day, file) of the redacted days of a frame (day -> redact version), oldest first."""
    return [(d, lake.day_version_path(REDACTED, d, v)) for d, v in sorted(days.items())]


def load_redacted(ids: set[str] | None = None, version: str | None = None) -> list[Conversation]:
    """The redacted conversations at a version (a frame of days, see redacted_files; default: the last).
    A conversation logged on several days of a frame is read from the latest of them."""
    out: dict[str, Conversation] = {}
    for _, path in redacted_files(version):  # the filter runs in DuckDB: only the ids asked for are read
        for r in lake.read_rows(path, where=None if ids is None else {"conversation_id": ids}):
            out[r["conversation_id"]] = conversation_from_row(r)
    return list(out.values())


def run_sample(
    size: int,
    seed: int,
    redact_version: str | None = None,
    days: dict[str, str] | None = None,
    window: int = 7,
) -> dict[str, Any]:
    """Sample the redacted traffic of a frame of days: `days` (day -> redact version), else the `window`
    days ending at the newest day redacted, at their latest versions. The frame is the union of those
    days (a conversation logged on several of them counts once, on the latest), so strata sizes and
    inclusion probabilities are those of the frame, and the weights 1/pi add up to its size.
    redact_version names a frame (or, from before the traffic had days, a redacted version) to
    sample again."""
    frame_days: dict[str, str] = {}
    if redact_version is None:
        frame_days = days if days is not None else redacted_days(window)
        redact_version = fingerprint(sorted(frame_days.items())) if frame_days else lake.latest_version(REDACTED)
    else:
        frame_days = lake.version_inputs(FRAME, None, redact_version).get("days") or {}
    files = _frame_files(frame_days) if frame_days else redacted_files(redact_version)
    day_of: dict[str, str | None] = {}
    strata: dict[str, str] = {}
    for d, path in files:  # a conversation logged on several days counts once, on the latest
        for r in lake.read_rows(path, columns=["conversation_id", "topic", "kind"]):
            day_of[r["conversation_id"]] = d
            strata[r["conversation_id"]] = sample.stratum_of(r["topic"], r["kind"])
    per_day_frame = Counter(d for d in day_of.values() if d)
    if frame_days and redact_version:
        counts_of = [
            {"day": d, "redacted_version": v, "conversations": per_day_frame[d]} for d, v in frame_days.items()
        ]
        lake.write_rows_version(FRAME, None, redact_version, counts_of, inputs={"days": frame_days})
    units = sorted(strata.items())
    rows = sample.stratified_sample(units, size, seed)
    for row in rows:
        row.day = day_of[row.conversation_id]
    version = fingerprint(redact_version or files[0][1], size, seed)
    inputs: dict[str, Any] = {REDACTED: redact_version} | ({"days": frame_days} if frame_days else {})
    path = lake.write_rows_version("sample", None, version, [r.model_dump() for r in rows], inputs=inputs)
    per_day_sampled = Counter(r.day for r in rows if r.day)
    return {
        "population": len(units),
        "sampled": len(rows),
        "strata": len(Counter(r.stratum for r in rows)),  # after small strata were pooled, if they had to be
        "topic_kind_strata": len({h for _, h in units}),
        "redact_version": redact_version,
        **(
            {
                "days": sorted(frame_days),
                "window": f"{min(frame_days)} to {max(frame_days)} ({len(frame_days)} days with traffic)",
                "per_day": {d: {"frame": per_day_frame[d], "sampled": per_day_sampled[d]} for d in sorted(frame_days)},
            }
            if frame_days
            else {}
        ),
        "path": str(path),
        "data_version": version,
    }


def sample_days(version: str | None = None) -> list[str]:
    """The days the sample at this version (default the last) was drawn from ([] from before days)."""
    return sorted(lake.version_inputs("sample", None, version or lake.latest_version("sample")).get("days") or {})


def sample_population(version: str | None = None) -> int:
    """Conversations the sample at this version (default the last) was drawn from."""
    rows = lake.read_rows(lake.current("sample", version=version))
    return sum(dict((r["stratum"], r["population"]) for r in rows).values())


def sampled_ids(version: str | None = None) -> set[str]:
    return {r["conversation_id"] for r in lake.read_rows(lake.current("sample", version=version))}


# ---- per candidate ---------------------------------------------------------------------


def replay_to_row(r: ReplayRecord) -> dict[str, Any]:
    return {
        "candidate": r.candidate,
        "conversation_id": r.conversation_id,
        "status": r.status,
        "error": r.error,
        "turn": [m.model_dump() for m in r.turn],
        "tool_results": [t.model_dump() for t in r.tool_results],
        "attempts": r.attempts,
        "http_calls": r.http_calls,
        "cached_calls": r.cached_calls,
        "latency_ms": r.latency_ms,
        "prompt_tokens": r.usage.prompt_tokens,
        "completion_tokens": r.usage.completion_tokens,
    }


def redact_outputs(records: list[ReplayRecord], convs: dict[str, Conversation]) -> Counter[str]:
    """Redact what the models wrote (the candidate, and the tool simulator's results), numbering
    new values after the conversation's own.

    A value the model invents gets a placeholder its input never had: that is the
    PII-leakage signal, and the raw value never reaches the lake. Recorded tool results come
    from the redacted log and are left as they are.
    """
    from deploysim.privacy.placeholders import PlaceholderState
    from deploysim.privacy.redaction import redact_text

    counts: Counter[str] = Counter()
    for rec in records:
        conv = convs[rec.conversation_id]
        texts = [m.content or "" for m in conv.messages] + [c.arguments for m in conv.messages for c in m.tool_calls]
        texts += [json.dumps(conv.tools, ensure_ascii=False), conv.topic or "", conv.surface or ""]  # redacted too
        state = PlaceholderState.from_texts(texts)
        results = iter(rec.tool_results)  # one per tool message of the turn, in the same order
        for m in rec.turn:
            if m.role == "tool":
                tr = next(results, None)
                if tr is not None and tr.source != "recorded":
                    new = redact_text(m.content, state)
                    counts["changed"] += new != m.content
                    m.content = new
                    tr.content = redact_text(tr.content, state) or ""
                    tr.detail = redact_text(tr.detail, state)
                continue
            if m.role != "assistant":
                continue
            if m.content:
                new = redact_text(m.content, state)
                counts["changed"] += new != m.content
                m.content = new
            for c in m.tool_calls:
                c.arguments = redact_text(c.arguments, state) or ""
    return counts


def replay_options(cand: reg.Candidate):
    """The candidate's replay settings: pacing, cost accounting, the agent step limit, the tool simulator."""
    from deploysim.replay.engine import ReplayOptions

    sim = None
    if cand.tool_simulator_model:
        sim = cand.model_copy(update={"name": f"{cand.name}-tool-simulator", "model": cand.tool_simulator_model})
    return ReplayOptions(
        max_steps=cand.max_steps,
        requests_per_minute=cand.requests_per_minute,
        tokens_per_minute=cand.tokens_per_minute,
        tool_simulator=sim,
        price_prompt_per_mtok=cand.price_prompt_per_mtok,
        price_completion_per_mtok=cand.price_completion_per_mtok,
    )


def run_replay(
    candidate: str,
    progress: Progress | None = None,
    deadline_s: float | None = None,
    sample_version: str | None = None,
    redact_version: str | None = None,
    baseline_replay_version: str | None = None,
    shards: int = 1,
) -> dict[str, Any]:
    """Replay the sample (at sample_version, its conversations at redact_version; default: the versions
    last written) against a candidate, in this process: plan_replay, each shard in turn, merge_replay.
    The replay pins them: its inputs.json and the returned `sample_version`/`redact_version` are what
    the candidate's later steps read. A candidate whose baseline is another candidate must be paired
    with that baseline's replay on the same sample (baseline_replay_version, default its last replay).
    The summary (see deploysim.replay.accounting.summarize) says how many answers came from the cache
    (`cached_answers` of `answers`) and groups errors in `failure_classes`."""
    plan = plan_replay(candidate, shards, sample_version, redact_version, baseline_replay_version)
    done = [replay_shard(part, progress=progress, deadline_s=deadline_s) for part in plan]
    return merge_replay(done)


def plan_replay(
    candidate: str,
    shards: int = 1,
    sample_version: str | None = None,
    redact_version: str | None = None,
    baseline_replay_version: str | None = None,
) -> list[dict[str, Any]]:
    """The replay of a candidate split into at most `shards` parts (the sampled ids dealt round-robin),
    each a dict that replay_shard takes: the candidate, the pinned versions, the shard's ids. Each part
    may run in its own process or on its own machine; they share the replay cache."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    cand = reg.get(candidate)
    sample_version = sample_version or lake.latest_version("sample")
    redact_version = (
        redact_version
        or lake.version_inputs("sample", None, sample_version).get(REDACTED)
        or lake.latest_version(REDACTED)
    )
    check_paired(candidate, sample_version, baseline_replay_version)
    ids = sorted(sampled_ids(sample_version))
    n = max(1, min(shards, len(ids)))
    plan = fingerprint(cand.model_dump(exclude=PACING), ids, sample_version, redact_version)
    common = {"candidate": candidate, "sample_version": sample_version, "redact_version": redact_version}
    return [common | {"plan": plan, "shard": i, "shards": n, "ids": ids[i::n]} for i in range(n)]


PACING = {
    "concurrency",
    "timeout_s",
    "max_retries",
    "requests_per_minute",
    "tokens_per_minute",
    "price_prompt_per_mtok",
    "price_completion_per_mtok",
}


def replay_shard(
    part: dict[str, Any], progress: Progress | None = None, deadline_s: float | None = None
) -> dict[str, Any]:
    """Replay one part of a plan_replay: its conversations, with the candidate's concurrency and rate
    limits divided among the shards (together they keep the candidate's limits). The records, their
    outputs redacted, are written beside the replay's versions (overwritten when the shard runs again,
    removed by merge_replay); returns the part with the file's `path` and the shard's `seconds`."""
    import time

    from deploysim.replay.cache import default_cache_path
    from deploysim.replay.engine import replay

    n = part["shards"]
    cand = reg.get(part["candidate"])
    cand = cand.model_copy(update={"concurrency": max(1, -(-cand.concurrency // n))})
    opts = replay_options(cand)
    if n > 1:
        opts.requests_per_minute = opts.requests_per_minute / n if opts.requests_per_minute else None
        opts.tokens_per_minute = opts.tokens_per_minute / n if opts.tokens_per_minute else None
    if deadline_s is not None:
        opts.deadline_s = deadline_s
    convs = {c.conversation_id: c for c in load_redacted(set(part["ids"]), part["redact_version"])}
    ordered = [convs[i] for i in sorted(convs)]
    start = time.monotonic()
    records = replay(
        ordered, cand, default_cache_path("replay"), max_steps=cand.max_steps, progress=progress, options=opts
    )
    seconds = time.monotonic() - start
    redact_outputs(records, convs)
    path = lake.version_path(SHARDS, part["candidate"], part["plan"], name=f"shard-{part['shard']}-of-{n}")
    lake.write_rows(path, [replay_to_row(r) for r in records])
    return part | {"path": str(path), "seconds": round(seconds, 3), "replayed": len(records)}


SHARDS = "replay_shards"  # lake/replay_shards/candidate=<key>/version=<plan>/shard-<i>-of-<n>.parquet


def merge_replay(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards of one plan_replay (run by replay_shard) merged into the candidate's replay version:
    every sampled conversation exactly once, in id order. The version is the plan's, with the failed
    conversations when any failed (so a run that completes them writes a new version)."""
    if not parts:
        raise ValueError("no shards to merge")
    first = parts[0]
    n, plan, candidate = first["shards"], first["plan"], first["candidate"]
    if sorted(p["shard"] for p in parts) != list(range(n)) or {p["plan"] for p in parts} != {plan}:
        raise ValueError(f"shards of {candidate!r} do not make one replay: {[p['shard'] for p in parts]} of {n}")
    rows = (r for p in parts for r in lake.read_rows(lake.location(p["path"])))
    records = sorted((_replay_record(r) for r in rows), key=lambda r: r.conversation_id)
    got = [r.conversation_id for r in records]
    if len(set(got)) != len(got) or not set(got) <= {i for p in parts for i in p["ids"]}:
        raise ValueError(f"the shards of {candidate!r} hold other conversations than its sample, or some twice")
    failed = [(r.conversation_id, r.error) for r in records if r.status != "ok"]
    version = fingerprint(plan, failed) if failed else plan
    pins = {"sample": first["sample_version"], REDACTED: first["redact_version"]}
    path = lake.write_rows_version("replay", candidate, version, [replay_to_row(r) for r in records], inputs=pins)
    shard_dir = lake.location(first["path"]).parent
    if lake.exists(shard_dir):
        lake.remove(shard_dir)  # merged: the shards' copy of the rows is not kept
    return replay_summary(records, replay_options(reg.get(candidate))) | {
        "sample_version": first["sample_version"],
        "redact_version": first["redact_version"],
        "path": str(path),
        "data_version": version,
        "shards": n,
        "shard_seconds": [p["seconds"] for p in sorted(parts, key=lambda p: p["shard"])],
    }


def replay_pins(candidate: str, replay_version: str | None = None) -> dict[str, str | None]:
    """The sample and redacted versions a candidate's replay (default: its last) was made on."""
    pins = lake.version_inputs("replay", candidate, replay_version or lake.latest_version("replay", candidate))
    return {"sample": pins.get("sample"), REDACTED: pins.get(REDACTED)}


class NotPaired(ValueError):
    """A candidate and its baseline candidate were replayed on different samples."""


def check_paired(candidate: str, sample_version: str | None, baseline_replay_version: str | None = None) -> str | None:
    """For a candidate whose baseline is another candidate: the baseline's replay version to pair with
    (default its last replay), after checking it was made on the same sample version."""
    base = reg.get(candidate).baseline
    if base == reg.PRODUCTION:
        return None
    baseline_replay_version = baseline_replay_version or lake.latest_version("replay", base)
    if not baseline_replay_version:
        raise NotPaired(
            f"baseline {base!r} of {candidate!r} has no replay yet: replay it on sample version "
            f"{sample_version} first (`deploysim run {base} --skip-traffic`)"
        )
    theirs = replay_pins(base, baseline_replay_version)["sample"]
    if sample_version and theirs and theirs != sample_version:
        raise NotPaired(
            f"baseline {base!r} of {candidate!r} was replayed on sample version {theirs}, {candidate!r} "
            f"on {sample_version}: the baseline must be replayed on sample version {sample_version} "
            f"(`deploysim run {base} --skip-traffic` while it is the latest sample)"
        )
    return baseline_replay_version


def replay_cost(candidate: str, replay_version: str | None = None) -> dict[str, Any]:
    """The accounting of a candidate's replay (default: its last), from the lake."""
    return replay_summary(load_replay(candidate, version=replay_version), replay_options(reg.get(candidate)))


def replay_summary(records: list[ReplayRecord], options=None) -> dict[str, Any]:
    """The replay engine's accounting (tokens, cost at the candidate's prices), with `replayed` for the
    count of sampled conversations."""
    from deploysim.replay.accounting import summarize

    out = summarize(records, options)
    return {"replayed": out.pop("items"), **out}


def load_replay(candidate: str, where: dict[str, Any] | None = None, version: str | None = None) -> list[ReplayRecord]:
    """A candidate's replay records at a version (default: the last) from the lake (the inverse of
    replay_to_row); where: column -> value."""
    return [_replay_record(r) for r in lake.read_rows(lake.current("replay", candidate, version), where=where)]


def _replay_record(r: dict[str, Any]) -> ReplayRecord:
    """A replay row from the lake as a record (the inverse of replay_to_row)."""
    return ReplayRecord.model_validate(
        r
        | {
            "turn": json.loads(r["turn"]),
            "tool_results": json.loads(r["tool_results"]),
            "usage": {"prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"]},
        }
    )


def load_turns(candidate: str, version: str | None = None) -> dict[str, list[Message]]:
    return {r.conversation_id: r.turn for r in load_replay(candidate, where={"status": "ok"}, version=version)}


def baseline_turns(
    candidate: str,
    convs: list[Conversation],
    sample_version: str | None = None,
    baseline_replay_version: str | None = None,
) -> dict[str, list[Message]]:
    """The baseline's turns: the logged ones, or those of the baseline candidate's replay on the same sample."""
    base = reg.get(candidate).baseline
    if base == reg.PRODUCTION:
        return {c.conversation_id: c.logged_turn() for c in convs}
    return load_turns(base, check_paired(candidate, sample_version, baseline_replay_version))


def pinned(candidate: str, replay_version: str | None) -> tuple[str | None, dict[str, str | None]]:
    """The replay version (default: the last) and the sample/redacted versions it pinned."""
    replay_version = replay_version or lake.latest_version("replay", candidate)
    return replay_version, replay_pins(candidate, replay_version)


def run_grade(
    candidate: str,
    settings: Settings | None = None,
    replay_version: str | None = None,
    baseline_replay_version: str | None = None,
) -> dict[str, Any]:
    """Grade candidate and baseline turns with every grader of the taxonomy (DEPLOYSIM_TAXONOMY or the
    default policy); judge graders run when a judge is configured (deploysim.grading.judge.from_env)."""
    from deploysim.grading import judge as judge_mod
    from deploysim.grading import taxonomy

    s = settings or load_settings()
    tax = taxonomy.load(s.taxonomy)
    judge = judge_mod.from_settings(s)
    gs = taxonomy.graders_for(tax, judge=judge)
    replay_version, pins = pinned(candidate, replay_version)
    baseline_replay_version = check_paired(candidate, pins["sample"], baseline_replay_version)
    convs = load_redacted(sampled_ids(pins["sample"]), pins[REDACTED])
    try:
        rows = graders.grade_turns(convs, load_turns(candidate, replay_version), "candidate", gs)
        rows += graders.grade_turns(
            convs, baseline_turns(candidate, convs, pins["sample"], baseline_replay_version), "baseline", gs
        )
    finally:
        if judge is not None:
            judge.close()
    ids = [g.id for g in gs]
    version = fingerprint(
        replay_version, baseline_replay_version, tax.model_dump(), ids, judge.fingerprint() if judge else None
    )
    inputs = {"replay": replay_version, "baseline_replay": baseline_replay_version, **pins}
    out = lake.write_rows_version("grade", candidate, version, [g.model_dump() for g in rows], inputs=inputs)
    flagged = Counter((g.behaviour, g.grader) for g in rows if g.system == "candidate" and g.flagged)
    no_verdict = Counter(g.grader for g in rows if g.detail.startswith("no verdict"))
    primary = tax.primary_graders()
    out_meta = {
        "grades": len(rows),
        "graders": ids,
        "flagged": {b.id: flagged.get((b.id, primary[b.id]), 0) for b in tax.behaviours},
        "per_behaviour": grade_counts(rows, tax, judge is not None),
        "sample_version": pins["sample"],
        "path": str(out),
        "data_version": version,
    }
    if judge is not None:
        out_meta["judge"] = {
            "model": judge.model,
            "flagged": {
                b.id: flagged.get((b.id, g), 0) for b in tax.behaviours for g in b.graders if g.startswith("judge.")
            },
            "calls": judge.counters.http_calls,
            "cached": judge.counters.cached,
            "reasks": judge.counters.reasks,
            "no_verdict": dict(no_verdict),
        }
    return out_meta


def grade_counts(rows: list[Grade], tax, judged: bool) -> list[dict[str, Any]]:
    """Per behaviour: the primary grader's flagged and applicable turns of candidate and baseline, and
    the candidate turns a judge grader flagged (None when no judge ran)."""
    n = Counter((g.behaviour, g.grader, g.system, k) for g in rows for k in ("applicable", "flagged") if getattr(g, k))
    primary = tax.primary_graders()
    out = []
    for b in tax.behaviours:
        row: dict[str, Any] = {"behaviour": b.id, "grader": primary[b.id]}
        for system in ("candidate", "baseline"):
            for k in ("flagged", "applicable"):
                row[f"{system}_{k}"] = n[(b.id, primary[b.id], system, k)]
        judges = [g for g in b.graders if g.startswith("judge.")]
        row["judge_flagged"] = sum(n[(b.id, g, "candidate", "flagged")] for g in judges) if judged and judges else None
        out.append(row)
    return out


IMPORTED_LABELS = "imported"  # where `deploysim labels FILE` puts labels: lake/labels/imported.parquet


def labels_path(candidate: str | None = None, version: str | None = None) -> UPath:
    """A candidate's human labels (the labels step's output, at a version, default the last), or,
    without a candidate, the imported ones."""
    return lake.current("labels", candidate, version) if candidate else lake.lake_path("labels", name=IMPORTED_LABELS)


Reviewer = Callable[[list[Conversation], dict[str, list[Message]], dict[str, list[Message]]], list[dict[str, Any]]]


def run_labels(
    candidate: str,
    source: str | None = None,
    reviewer: Reviewer | None = None,
    settings: Settings | None = None,
    replay_version: str | None = None,
    baseline_replay_version: str | None = None,
) -> dict[str, Any]:
    """The human labels that apply to a candidate, from `source` (default DEPLOYSIM_LABELS): a CSV/JSONL
    file, or, when empty, the labels imported with `deploysim labels FILE`. Labels for another
    candidate are left out. A label is True (present), False (absent) or None (na: the behaviour
    does not apply; the estimate's corrected rate needs these to correct the graders' domain).
    `reviewer(conversations, candidate turns, baseline turns)` labels the sample instead (the demo's
    stand-in reviewers come from the test kit)."""
    from deploysim.grading import calibration

    if source is None:
        source = (settings or load_settings()).labels

    replay_version, pins = pinned(candidate, replay_version)
    if reviewer is not None:
        convs = load_redacted(sampled_ids(pins["sample"]), pins[REDACTED])
        rows = reviewer(
            convs,
            load_turns(candidate, replay_version),
            baseline_turns(candidate, convs, pins["sample"], baseline_replay_version),
        )
        origin = f"stand-in reviewers ({source})"
    elif source.startswith("demo-review:"):
        raise ValueError(f"labels source {source!r} needs the demo's stand-in reviewers (the test kit)")
    elif source:
        rows = [lab.model_dump() for lab in calibration.load_labels(source)]
        origin = source
    elif lake.exists(labels_path()):
        rows, origin = lake.read_rows(labels_path()), "imported with `deploysim labels`"
    else:
        rows, origin = [], "none (set DEPLOYSIM_LABELS or run `deploysim labels FILE`)"
    rows = [calibration.HumanLabel.model_validate(r).model_dump() for r in rows]  # label None: na
    rows = [
        r | {"candidate": candidate}
        for r in rows
        if r.get("system") == "baseline" or r.get("candidate") in (None, candidate)
    ]
    version = fingerprint(rows, replay_version, baseline_replay_version)  # its inputs.json pins that replay
    path = lake.write_rows_version(
        "labels", candidate, version, rows, schema=calibration.label_schema(), inputs={"replay": replay_version, **pins}
    )
    per = Counter(f"{r['behaviour']}/{r['system']}" for r in rows)
    return {
        "labels": len(rows),
        "not_applicable": sum(r["label"] is None for r in rows),
        "source": origin,
        "per_behaviour": dict(sorted(per.items())),
        "split": tables.labels_table(rows),
        "sample_version": pins["sample"],
        "path": str(path),
        "data_version": version,
    }


LINEAGE = ("sample", REDACTED, "replay", "baseline_replay", "grade", "labels")  # an estimate's inputs, by version


def run_estimate(
    candidate: str,
    settings: Settings | None = None,
    grade_version: str | None = None,
    labels_version: str | None = None,
    look: int = 0,
) -> dict[str, Any]:
    """Estimate from the grades (and labels) at their versions, default the last; the sample is read at
    the version the candidate's replay pinned. Each row carries its `version` and the versions of
    its inputs (`<input>_version`), so dbt and the history know what a gate decided on.
    look: round of a sample grown until the gate decides (0: a fixed sample; see stats.look_alpha).
    Each gated row also says how many further conversations the planner expects to decide it."""
    from deploysim.grading import taxonomy

    grade_version = grade_version or lake.latest_version("grade", candidate)
    pins = lake.version_inputs("grade", candidate, grade_version)
    sample_version = pins.get("sample") or lake.latest_version("sample")
    sample_rows = lake.read_rows(lake.current("sample", version=sample_version))
    grade_rows = lake.read_rows(lake.current("grade", candidate, grade_version))
    labels_version = labels_version or lake.latest_version("labels", candidate)
    lpath = labels_path(candidate, labels_version)
    has_labels = lake.exists(lpath)
    labels = lake.read_rows(lpath) if has_labels else None
    tax = taxonomy.load((settings or load_settings()).taxonomy)
    ests = stats.estimate(candidate, sample_rows, grade_rows, labels=labels, primary=tax.primary_graders(), look=look)
    max_rate = {t["behaviour"]: t["max_rate"] for t in tax.thresholds()}
    z = stats.look_z(look)
    for e in ests:
        if e.behaviour in max_rate:
            e.more_needed = conversations_to_decide(
                e.rate, max_rate[e.behaviour], e.n_sampled, e.n_applicable, e.n_eff, z
            )
    version = fingerprint(
        grade_version or lake.current("grade", candidate),
        sample_version,
        tax.model_dump(),
        labels_version if has_labels else None,
        *([look] if look else []),
    )
    inputs = {
        **pins,
        "sample": sample_version,
        "grade": grade_version,
        "labels": labels_version if has_labels else None,
    }
    lineage = {"version": version} | {f"{k}_version": inputs.get(k) for k in LINEAGE}
    path = lake.write_rows_version(
        "estimate", candidate, version, [e.model_dump() | lineage for e in ests], inputs=inputs
    )
    return {
        "estimates": [e.model_dump() for e in ests],
        "family_wise_error": "worse-than-baseline tests Holm-adjusted across gated behaviours (FWER 2.5%)",
        "look": look,
        "interval_level": f"{1 - 2 * stats.look_alpha(look):.2%}",
        "sample_version": sample_version,
        "sample_days": describe_days(sample_days(sample_version)),  # the days of traffic the sample was drawn from
        "replay_version": inputs.get("replay"),
        "path": str(path),
        "data_version": version,
    }


EVALUATED_WITH = {
    "judge_model": "judge model",
    "judge_samples": "judge samples",
    "labels": "human labels",
    "taxonomy": "taxonomy",
    "sample_size": "sample size",
    "seed": "sample seed",
    "min_completeness_pct": "required completeness",
}


def evaluation_changes(last: dict | None, now: Settings) -> list[str]:
    """How this run's evaluation differs from the candidate's last one (its recorded settings):
    one line per setting, e.g. "judge model: judge-accurate -> none". [] for a first run."""
    if not isinstance(last, dict):
        return []
    rec = now.recorded()

    def shown(v: Any) -> Any:
        return "none" if v in (None, "") else v

    return [
        f"{label}: {shown(last.get(k))} -> {shown(rec.get(k))}"
        for k, label in EVALUATED_WITH.items()
        if k in last and (last.get(k) or None) != (rec.get(k) or None)
    ]


def observed_logs(candidate: str, settings: Settings | None = None) -> str:
    """Where a released candidate's production logs arrive: DEPLOYSIM_OBSERVED_LOGS (may hold
    "{candidate}"), else <home>/raw/observed/candidate=<name> (the restricted zone)."""
    spec = (settings or load_settings()).observed_logs or str(lake.raw_dir() / "observed" / "candidate={candidate}")
    return spec.replace("{candidate}", candidate)


def run_observed(candidate: str, settings: Settings | None = None) -> dict[str, Any]:
    """Production's observed rates for a released candidate (its logs graded like `deploysim grade`),
    stored for the forecast scorecard; nothing to do until its production logs arrive."""
    from deploysim.estimation import observe, scorecard
    from deploysim.grading import judge as judge_mod
    from deploysim.grading import taxonomy
    from deploysim.logs.ingest import input_files

    src = observed_logs(candidate, settings)
    if not (Path(src).exists() or glob.glob(src)):
        return {"observed": f"no production logs yet for {candidate} (looked in {src})", "data_version": "none"}
    s = settings or load_settings()
    tax = taxonomy.load(s.taxonomy)
    judge = judge_mod.from_settings(s)
    try:
        files = input_files([src])
        n, quarantined, _, table = observe.grade_logs([str(f) for f in files], tax, judge)
    finally:
        if judge is not None:
            judge.close()
    scorecard.write_observed(candidate, table)
    card = scorecard.write(candidate, lake.current("estimate", candidate))  # its latest forecast
    return {
        "conversations": n,
        "quarantined": quarantined,
        "scorecard": card[1] if card else "no forecast to score yet",
        "observed": tables.observed_table(table),
        "data_version": fingerprint(*files, tax.model_dump(), judge.fingerprint() if judge else None),
    }


def gate_dir(candidate: str) -> UPath:
    """The folder of a candidate's gate exports (one run=<run id>/ folder per dbt run)."""
    return lake.asset_dir("gate", candidate)


def gate_path(candidate: str, run_id: str | None = None) -> UPath:
    """dbt's export of the gate rows of one run (release_gate_export), or without a run id the newest export."""
    if run_id:
        return gate_dir(candidate) / f"run={run_id}" / "release_gate.parquet"
    found = sorted(lake.glob(gate_dir(candidate), "run=*/release_gate.parquet"), key=lake.mtime)
    return found[-1] if found else gate_dir(candidate) / "release_gate.parquet"


def read_gate(candidate: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """The gate rows of a run (see gate_path), by behaviour; [] when there are none."""
    path = gate_path(candidate, run_id)
    rows = lake.read_rows(path) if lake.exists(path) else []
    return sorted((r for r in rows if r.get("behaviour") is not None), key=lambda r: r["behaviour"])


def reports_dir(candidate: str) -> Path:
    return lake.home() / "reports" / candidate


def report_path(candidate: str, run_id: str | None = None) -> Path:
    """The report of one run (reports/<candidate>/<run id>/report.html, never overwritten), or without
    a run id the newest one."""
    if run_id:
        return reports_dir(candidate) / run_id / "report.html"
    latest = reports_dir(candidate) / lake.LATEST
    if latest.exists():
        return reports_dir(candidate) / latest.read_text().strip() / "report.html"
    return reports_dir(candidate) / "report.html"


def run_report(
    candidate: str,
    examples_per_behaviour: int = 3,
    settings: Settings | None = None,
    run_id: str | None = None,
    gate_run_id: str | None = None,
    estimate_version: str | None = None,
    discover_version: str | None = None,
) -> dict[str, Any]:
    """The report of the gate of dbt run gate_run_id (default: the newest export), on the estimate at
    estimate_version (default: the last) and the grades, labels, replay and sample it was made from;
    written to reports/<candidate>/<run_id>/ (run_id default: gate_run_id)."""
    from deploysim.estimation.breakdown import breakdown
    from deploysim.grading import taxonomy
    from deploysim.report.render import ReportData, markdown, render_html

    cand = reg.get(candidate)
    gate_file = gate_path(candidate, gate_run_id)
    gate = [r for r in lake.read_rows(gate_file) if r.get("behaviour") is not None]
    gate.sort(key=lambda r: r["behaviour"])
    estimate_version = estimate_version or lake.latest_version("estimate", candidate)
    ins = lake.version_inputs("estimate", candidate, estimate_version)
    records = load_replay(candidate, version=ins.get("replay"))
    grades = lake.read_rows(lake.current("grade", candidate, ins.get("grade")))
    failing = [r["behaviour"] for r in gate if r["status"] == "fail"]
    shown = failing + [r["behaviour"] for r in gate if r["status"] == "inconclusive"]  # examples of these
    primary = taxonomy.load((settings or load_settings()).taxonomy).primary_graders()
    flagged = [
        g
        for g in grades
        if g["system"] == "candidate"
        and g["flagged"]
        and g["behaviour"] in shown
        and g["grader"] == primary.get(g["behaviour"])
    ]
    picked: dict[str, list[dict]] = {}
    for g in flagged:
        if len(picked.setdefault(g["behaviour"], [])) < examples_per_behaviour:
            picked[g["behaviour"]].append(g)
    sample_rows = lake.read_rows(lake.current("sample", version=ins.get("sample")))
    convs = {
        c.conversation_id: c for c in load_redacted({s["conversation_id"] for s in sample_rows}, ins.get(REDACTED))
    }
    turns = {r.conversation_id: r.turn for r in records if r.status == "ok"}
    examples = {
        b: [(convs[g["conversation_id"]], turns[g["conversation_id"]], g["detail"]) for g in gs]
        for b in shown
        if (gs := picked.get(b))
    }
    levels: dict[str, dict[str, str]] = {
        "topic": {c: v.topic for c, v in convs.items()},
        "surface": {c: v.surface for c, v in convs.items()},
        "kind": {c: v.kind for c, v in convs.items()},
    }
    by_stratum = [c.as_dict() for c in breakdown(sample_rows, grades, levels, primary=primary)]
    from deploysim.estimation import scorecard
    from deploysim.grading import calibration

    calib, ppi = [], []
    lpath = labels_path(candidate, ins.get("labels"))
    if lake.exists(lpath):
        calib = [r.as_dict() for r in calibration.calibration_table(grades, lake.read_rows(lpath), candidate)]
    epath = lake.current("estimate", candidate, estimate_version)
    if lake.exists(epath):
        ppi = [e for e in lake.read_rows(epath) if e.get("ppi_rate") is not None]
    data = ReportData(
        candidate=candidate,
        model=cand.model,
        baseline=cand.baseline,
        gate=gate,
        replay=replay_summary(records, replay_options(cand)),
        examples=examples,
        scorecard=scorecard.load(candidate),
        calibration=calib,
        ppi=ppi,
        breakdown=by_stratum,
        examples_of={b: primary[b] for b in examples if b in primary},
        clusters=discovered(candidate, discover_version),
        traffic_days=sample_days(ins.get("sample")),
    )

    run_id = run_id or gate_run_id or gate_file.parent.name.removeprefix("run=")
    out = report_path(candidate, run_id)
    tmp = out.parent.with_name(f".{run_id}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    tmp.mkdir(parents=True)
    (tmp / out.name).write_text(render_html(data))
    md = markdown(data)
    (tmp / "summary.md").write_text(md)
    if out.parent.exists():  # the same run rendered again (a retried step): replace its own report
        shutil.rmtree(out.parent)
    os.rename(tmp, out.parent)
    lake.set_latest_file(reports_dir(candidate) / lake.LATEST, run_id)
    return {
        "verdict": data.verdict,
        "path": str(out),
        "markdown": md,
        "gate_rows": gate,
        "calibration": calib,
        "completeness": data.replay.get("completeness"),
        "failing": failing,
        "gate": str(gate_file),
        "estimate_version": estimate_version,
        "sample_version": ins.get("sample"),
        "data_version": fingerprint(estimate_version, gate_run_id, run_id),
    }


def compare_path() -> Path:
    return lake.home() / "reports" / "compare.html"


def write_comparison(names: Sequence[str] = ()) -> Path:
    """The comparison page of the named candidates (default: every registered candidate with a gate
    decision), each with its history of decisions; written to reports/compare.html."""
    from deploysim import history
    from deploysim.errors import NotFound
    from deploysim.report.compare import Entry, render_compare

    registered = reg.load_registry().candidates
    if not names:
        names = [n for n in sorted(registered) if history.decisions(n)]
        if not names:
            raise NotFound("no registered candidate has a gate decision yet: run `deploysim run NAME` first")
    entries = []
    for name in names:
        cand = reg.get(name)  # NotFound for an unknown candidate
        decisions = history.decisions(name)
        if not decisions:
            raise NotFound(f"candidate {name!r} has no gate decision yet: run `deploysim run {name}` first")
        entries.append(Entry(name, cand.model, cand.baseline, decisions, read_gate(name, decisions[0]["run_id"])))
    out = compare_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = lake.temp_path(out)
    tmp.write_text(render_compare(entries, out))
    os.replace(tmp, out)
    return out


def discovered(candidate: str, version: str | None = None) -> list[dict[str, Any]]:
    """The discover step's clusters at a version (default: the last), by cluster; [] when none."""
    path = lake.current("discover", candidate, version)
    rows = lake.read_rows(path) if lake.exists(path) else []
    return sorted(rows, key=lambda r: r["cluster"])


def residual_pii(
    paths: Sequence[Path | UPath],
    extra_texts: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    max_places: int = 20,
) -> dict[str, Any]:
    """Scan every string cell of Parquet files, other files, extra texts and metadata for personal
    data left in clear (deterministic detectors only).

    ``metadata`` maps a source name (e.g. an asset key) to any value: a Dagster metadata dict of
    MetadataValue objects, JSON, Markdown...; every string inside is scanned (deploysim.privacy.scan.strings_in) and
    hits are counted under ``metadata:<name>``. Counts and places only, never the values: ``places``
    lists the first ``max_places`` hits as file, type and, in Parquet files, the record
    (conversation_id, already redacted) and field (``messages[3].content``, ``topic``)."""
    from deploysim.privacy.detectors import find_pii
    from deploysim.privacy.scan import pii_places, scan_texts

    hits: Counter[str] = Counter()
    where: Counter[str] = Counter()
    places: list[dict[str, Any]] = []
    for p in paths:
        if p.suffix == ".parquet":
            for record, column, t in parquet_cells(p):
                spans = find_pii(t)
                hits.update(s.type for s in spans)
                where[p.name] += len(spans)
                if spans and len(places) < max_places:
                    rec = "(an id holding personal data)" if record and find_pii(record) else record
                    places += [
                        {"file": p.name, "record": rec, "field": f, "type": ty} for f, ty in pii_places(column, t)
                    ][: max_places - len(places)]
            continue
        for span in find_pii(p.read_text()):
            hits[span.type] += 1
            where[p.name] += 1
            if len(places) < max_places:
                places.append({"file": p.name, "type": span.type})
    for t in extra_texts:
        for span in find_pii(t):
            hits[span.type] += 1
            where["metadata"] += 1
            if len(places) < max_places:
                places.append({"file": "metadata", "type": span.type})
    for name, value in (metadata or {}).items():
        found = scan_texts({f"metadata:{name}": value})
        hits.update(found["by_type"])
        where.update(found["by_file"])
        for ty in found["by_type"]:
            if len(places) < max_places:
                places.append({"file": f"metadata:{name}", "type": ty})
    # Counts and places only: the values themselves must not travel into check metadata.
    return {"hits": sum(hits.values()), "by_type": dict(hits), "by_file": dict(where), "places": places}


def parquet_cells(path: Path | UPath, batch_size: int = 1000):
    """(conversation_id or None, column, text) for every non-empty string cell of a Parquet file,
    batch by batch (bounded memory)."""
    import pyarrow as pa

    with lake.parquet_file(path) as f:
        cols = [
            fld.name for fld in f.schema_arrow if pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)
        ]
        if not cols:
            return
        for batch in f.iter_batches(batch_size=batch_size, columns=cols):
            data = batch.to_pydict()
            ids = data.get("conversation_id") or [None] * batch.num_rows
            for i in range(batch.num_rows):
                for c in cols:
                    v = data[c][i]
                    if v:
                        yield ids[i], c, v


def quarantine_file(path: Path | UPath) -> Path:
    """Move a lake file that holds personal data into the restricted zone (local, also when the lake is
    on object storage): <home>/raw/quarantine/<name>-<UTC time>.parquet. Returns where it went."""
    from datetime import datetime, timezone

    dest = lake.raw_dir() / "quarantine" / f"{path.stem}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}{path.suffix}"
    return lake.move_out(path, dest)


def check_redacted(metadata: dict[str, Any] | None = None, path: Path | UPath | None = None) -> dict[str, Any]:
    """The residual-PII check of the redact output (residual_pii); when it fails, the file is moved
    to the restricted zone (quarantine_file) so that nothing downstream reads it, and
    ``quarantined`` says where."""
    path = path or lake.current(REDACTED)
    found = residual_pii([path], metadata=metadata)
    if found["hits"] and lake.exists(path):
        found["quarantined"] = str(quarantine_file(path))
    return found


def check_redacted_all(recorded: Sequence[tuple[dict[str, Any], Path | UPath | None]]) -> dict[str, Any]:
    """check_redacted over several redact outputs (metadata, file), e.g. the days one run redacted:
    counts added up, the first 20 places, and where the last failing file was quarantined."""
    total: dict[str, Any] = {"hits": 0, "by_type": Counter(), "by_file": Counter(), "places": []}
    for meta, path in recorded:
        found = check_redacted(metadata={"redact": meta}, path=path)
        total["hits"] += found["hits"]
        total["by_type"].update(found["by_type"])
        total["by_file"].update(found["by_file"])
        total["places"] = (total["places"] + found.get("places", []))[:20]
        if found.get("quarantined"):
            total["quarantined"] = found["quarantined"]
    return total | {"by_type": dict(total["by_type"]), "by_file": dict(total["by_file"])}
