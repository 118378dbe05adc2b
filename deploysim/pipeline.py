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
from typing import Any, Callable

from deploysim import candidates as reg
from deploysim.grading import graders
from deploysim import lake
from deploysim.sampling import stratified as sample
from deploysim.estimation import stats
from deploysim.schemas import (
    Conversation,
    Message,
    ReplayRecord,
    conversation_from_row,
    conversation_to_row,
)

Progress = Callable[[int, int], None]

RAW_CONVERSATIONS = "raw/ingest/conversations.parquet"
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

    return pa.schema([(k, pa.string()) for k in ("conversation_id", "topic", "surface", "kind", "messages", "tools", "metadata")])


class _BatchWriter:
    """Rows appended to a Parquet file in batches (bounded memory), moved into place on close."""

    def __init__(self, path: Path, schema, batch: int = 2000) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.schema, self.batch, self.rows, self.n = path, schema, batch, [], 0
        self.tmp = lake.temp_path(path)
        self.writer = pq.ParquetWriter(self.tmp, schema)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append({k: (json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v)
                          for k, v in row.items()})
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.n += len(self.rows)
            self.rows = []

    def close(self) -> None:
        import os

        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


def run_ingest(logs: str, fmt: str | None = None) -> dict[str, Any]:
    """Stream the logs (any supported format, DEPLOYSIM_LOG_FORMAT to force one) into the raw zone."""
    import os

    from deploysim.logs.ingest import IngestCounts, input_files, iter_ingest
    from deploysim.schemas import Conversation

    specs = resolve_inputs(logs)
    paths = input_files(specs)  # no log file at all fails here, before anything is written
    fmt = fmt or os.environ.get("DEPLOYSIM_LOG_FORMAT") or None
    home = lake.home()
    counts = IngestCounts()
    convs = _BatchWriter(home / RAW_CONVERSATIONS, _conversation_schema())
    quarantine = _BatchWriter(home / RAW_QUARANTINE, _QUARANTINE_SCHEMA)
    for item in iter_ingest(specs, fmt, counts=counts):  # the specs, so skipped files are counted
        if isinstance(item, Conversation):
            convs.add(conversation_to_row(item))
        else:
            quarantine.add(item.model_dump())
    convs.close()
    quarantine.close()
    return counts.as_dict() | {
        "files": [str(p) for p in paths],
        "data_version": fingerprint(*paths, fmt),
    }


def _quarantine_schema():
    import pyarrow as pa

    return pa.schema([("source_file", pa.string()), ("line", pa.int64()), ("reason", pa.string())])


_QUARANTINE_SCHEMA = _quarantine_schema()


def run_redact(purge_raw: bool = False) -> dict[str, Any]:
    """Redact the raw zone into the lake, batch by batch (configuration: RedactConfig.from_env)."""
    import pyarrow.parquet as pq

    from deploysim.privacy.policies import RedactConfig
    from deploysim.privacy.redaction import iter_redacted, split_counts

    src = lake.home() / RAW_CONVERSATIONS
    if not src.exists():
        raise FileNotFoundError(f"missing lake file: {src} (materialise its upstream asset first)")
    config = RedactConfig.from_env()

    def convs():
        for batch in pq.ParquetFile(src).iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                yield conversation_from_row(row)

    out = _BatchWriter(lake.lake_path("redacted"), _conversation_schema())
    counts: Counter[str] = Counter()
    for red, found in iter_redacted(convs(), config):
        counts.update(found)
        if red is not None:
            out.add(conversation_to_row(red))
    out.close()
    dropped = counts.pop("conversations_dropped", 0)
    entities, fields = split_counts(counts)
    # "all-fields": redaction covers every text field since issue 15 (older outputs are stale)
    version = fingerprint(src, "all-fields", config.ner, config.ner_model, config.policies, config.time_granularity,
                          config.metadata_allow)
    if purge_raw:
        shutil.rmtree(lake.home() / "raw" / "ingest", ignore_errors=True)
    return {"conversations": out.n, "dropped_by_policy": dropped, "ner": config.ner,
            "entities": dict(sorted(entities.items())), "fields_changed": dict(sorted(fields.items())),
            "data_version": version}


def load_redacted(ids: set[str] | None = None) -> list[Conversation]:
    rows = lake.read_rows(lake.lake_path("redacted"))
    return [conversation_from_row(r) for r in rows if ids is None or r["conversation_id"] in ids]


def run_sample(size: int, seed: int) -> dict[str, Any]:
    src = lake.lake_path("redacted")
    units = [(r["conversation_id"], sample.stratum_of(r["topic"], r["kind"])) for r in lake.read_rows(src)]
    rows = sample.stratified_sample(units, size, seed)
    lake.write_rows(lake.lake_path("sample"), [r.model_dump() for r in rows])
    strata = Counter(r.stratum for r in rows)
    return {
        "population": len(units),
        "sampled": len(rows),
        "strata": len(strata),  # after small strata were pooled, if they had to be
        "topic_kind_strata": len({h for _, h in units}),
        "data_version": fingerprint(src, size, seed),
    }


def sampled_ids() -> set[str]:
    return {r["conversation_id"] for r in lake.read_rows(lake.lake_path("sample"))}


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
                c.arguments = redact_text(c.arguments, state)
    return counts


def replay_options(cand: reg.Candidate):
    """The candidate's replay settings: pacing, cost accounting, the agent step limit, the tool simulator."""
    from deploysim.replay.engine import ReplayOptions

    sim = None
    if cand.tool_simulator_model:
        sim = cand.model_copy(update={"name": f"{cand.name}-tool-simulator", "model": cand.tool_simulator_model})
    return ReplayOptions(max_steps=cand.max_steps, requests_per_minute=cand.requests_per_minute,
                         tokens_per_minute=cand.tokens_per_minute, tool_simulator=sim,
                         price_prompt_per_mtok=cand.price_prompt_per_mtok,
                         price_completion_per_mtok=cand.price_completion_per_mtok)


def run_replay(candidate: str, progress: Progress | None = None, deadline_s: float | None = None) -> dict[str, Any]:
    """Replay the sample against a candidate. The summary (see deploysim.replay.accounting.summarize) says how many
    answers came from the cache (`cached_answers` of `answers`) and groups errors in `failure_classes`."""
    from deploysim.replay.cache import default_cache_path
    from deploysim.replay.engine import replay

    cand = reg.get(candidate)
    opts = replay_options(cand)
    if deadline_s is not None:
        opts.deadline_s = deadline_s
    ids = sampled_ids()
    convs = {c.conversation_id: c for c in load_redacted(ids)}
    ordered = [convs[i] for i in sorted(convs)]
    records = replay(ordered, cand, default_cache_path("replay"), max_steps=cand.max_steps, progress=progress,
                     options=opts)
    redact_outputs(records, convs)
    lake.write_rows(lake.lake_path("replay", candidate), [replay_to_row(r) for r in records])
    pacing = {"concurrency", "timeout_s", "max_retries", "requests_per_minute", "tokens_per_minute",
              "price_prompt_per_mtok", "price_completion_per_mtok"}
    return replay_summary(records, opts) | {
        "data_version": fingerprint(cand.model_dump(exclude=pacing), sorted(ids)),
    }


def replay_cost(candidate: str) -> dict[str, Any]:
    """The accounting of a candidate's last replay (tokens, cost at its prices, ...), from the lake."""
    return replay_summary(load_replay(candidate), replay_options(reg.get(candidate)))


def replay_summary(records: list[ReplayRecord], options=None) -> dict[str, Any]:
    """The replay engine's accounting (tokens, cost at the candidate's prices), with `replayed` for the
    count of sampled conversations."""
    from deploysim.replay.accounting import summarize

    out = summarize(records, options)
    return {"replayed": out.pop("items"), **out}


def load_replay(candidate: str, where: dict[str, Any] | None = None) -> list[ReplayRecord]:
    """A candidate's replay records from the lake (the inverse of replay_to_row); where: column -> value."""
    return [ReplayRecord.model_validate(r | {"turn": json.loads(r["turn"]), "tool_results": json.loads(r["tool_results"]),
                                             "usage": {"prompt_tokens": r["prompt_tokens"],
                                                       "completion_tokens": r["completion_tokens"]}})
            for r in lake.read_rows(lake.lake_path("replay", candidate), where=where)]


def load_turns(candidate: str) -> dict[str, list[Message]]:
    return {r.conversation_id: r.turn for r in load_replay(candidate, where={"status": "ok"})}


def baseline_turns(candidate: str, convs: list[Conversation]) -> dict[str, list[Message]]:
    base = reg.get(candidate).baseline
    if base == reg.PRODUCTION:
        return {c.conversation_id: c.logged_turn() for c in convs}
    return load_turns(base)


def run_grade(candidate: str) -> dict[str, Any]:
    """Grade candidate and baseline turns with every grader of the taxonomy (DEPLOYSIM_TAXONOMY or the
    default policy); judge graders run when a judge is configured (deploysim.grading.judge.from_env)."""
    from deploysim.grading import judge as judge_mod
    from deploysim.grading import taxonomy

    tax = taxonomy.load()
    judge = judge_mod.from_env()
    gs = taxonomy.graders_for(tax, judge=judge)
    convs = load_redacted(sampled_ids())
    try:
        rows = graders.grade_turns(convs, load_turns(candidate), "candidate", gs)
        rows += graders.grade_turns(convs, baseline_turns(candidate, convs), "baseline", gs)
    finally:
        if judge is not None:
            judge.close()
    out = lake.lake_path("grade", candidate)
    lake.write_rows(out, [g.model_dump() for g in rows])
    flagged = Counter((g.behaviour, g.grader) for g in rows if g.system == "candidate" and g.flagged)
    no_verdict = Counter(g.grader for g in rows if g.detail.startswith("no verdict"))
    ids = [g.id for g in gs]
    primary = tax.primary_graders()
    out_meta = {
        "grades": len(rows),
        "graders": ids,
        "flagged": {b.id: flagged.get((b.id, primary[b.id]), 0) for b in tax.behaviours},
        "data_version": fingerprint(lake.lake_path("replay", candidate), tax.model_dump(), ids,
                                    judge.fingerprint() if judge else None),
    }
    if judge is not None:
        out_meta["judge"] = {"model": judge.model, "flagged": {b.id: flagged.get((b.id, g), 0) for b in tax.behaviours
                                                               for g in b.graders if g.startswith("judge.")},
                             "calls": judge.counters.http_calls, "cached": judge.counters.cached,
                             "reasks": judge.counters.reasks, "no_verdict": dict(no_verdict)}
    return out_meta


IMPORTED_LABELS = "imported"  # where `deploysim labels FILE` puts labels: lake/labels/imported.parquet


def labels_path(candidate: str | None = None) -> Path:
    """A candidate's human labels (the labels step's output), or, without a candidate, the imported ones."""
    return lake.lake_path("labels", candidate) if candidate else lake.lake_path("labels", name=IMPORTED_LABELS)


Reviewer = Callable[[list[Conversation], dict[str, list[Message]], dict[str, list[Message]]], list[dict[str, Any]]]


def run_labels(candidate: str, source: str | None = None, reviewer: Reviewer | None = None) -> dict[str, Any]:
    """The human labels that apply to a candidate, from `source` (default DEPLOYSIM_LABELS): a CSV/JSONL
    file, or, when empty, the labels imported with `deploysim labels FILE`. Labels for another
    candidate are left out. `reviewer(conversations, candidate turns, baseline turns)` labels the
    sample instead (the demo's stand-in reviewers come from the test kit)."""
    from deploysim.grading import calibration

    if source is None:
        source = os.environ.get("DEPLOYSIM_LABELS", "")

    if reviewer is not None:
        convs = load_redacted(sampled_ids())
        rows = reviewer(convs, load_turns(candidate), baseline_turns(candidate, convs))
        origin = f"stand-in reviewers ({source})"
    elif source.startswith("demo-review:"):
        raise ValueError(f"labels source {source!r} needs the demo's stand-in reviewers (the test kit)")
    elif source:
        rows = [lab.model_dump() for lab in calibration.load_labels(source)]
        origin = source
    elif labels_path().exists():
        rows, origin = lake.read_rows(labels_path()), "imported with `deploysim labels`"
    else:
        rows, origin = [], "none (set DEPLOYSIM_LABELS or run `deploysim labels FILE`)"
    rows = [r | {"candidate": candidate} for r in rows if r.get("system") == "baseline" or r.get("candidate") in (None, candidate)]
    lake.write_rows(labels_path(candidate), rows, schema=calibration.label_schema())
    per = Counter(f"{r['behaviour']}/{r['system']}" for r in rows)
    return {"labels": len(rows), "source": origin, "per_behaviour": dict(sorted(per.items())),
            "data_version": fingerprint(rows)}


def run_estimate(candidate: str) -> dict[str, Any]:
    from deploysim.grading import taxonomy

    sample_rows = lake.read_rows(lake.lake_path("sample"))
    grade_rows = lake.read_rows(lake.lake_path("grade", candidate))
    labels = lake.read_rows(labels_path(candidate)) if labels_path(candidate).exists() else None
    tax = taxonomy.load()
    ests = stats.estimate(candidate, sample_rows, grade_rows, labels=labels, primary=tax.primary_graders())
    lake.write_rows(lake.lake_path("estimate", candidate), [e.model_dump() for e in ests])
    return {
        "estimates": {e.behaviour: f"{e.rate:.2%} [{e.ci_low:.2%}, {e.ci_high:.2%}]"
                      + (f"; PPI++ {e.ppi_rate:.2%} [{e.ppi_ci_low:.2%}, {e.ppi_ci_high:.2%}] from {e.n_labelled} labels"
                         if e.ppi_rate is not None else "")
                      for e in ests},
        "family_wise_error": "worse-than-baseline tests Holm-adjusted across gated behaviours (FWER 2.5%)",
        "data_version": fingerprint(lake.lake_path("grade", candidate), tax.model_dump(),
                                    labels_path(candidate) if labels_path(candidate).exists() else None),
    }


def observed_logs(candidate: str) -> str:
    """Where a released candidate's production logs arrive: DEPLOYSIM_OBSERVED_LOGS (may hold
    "{candidate}"), else <home>/raw/observed/candidate=<name> (the restricted zone)."""
    spec = os.environ.get("DEPLOYSIM_OBSERVED_LOGS") or str(lake.raw_dir() / "observed" / "candidate={candidate}")
    return spec.replace("{candidate}", candidate)


def run_observed(candidate: str) -> dict[str, Any]:
    """Production's observed rates for a released candidate (its logs graded like `deploysim grade`),
    stored for the forecast scorecard; nothing to do until its production logs arrive."""
    from deploysim.grading import judge as judge_mod
    from deploysim.estimation import observe, scorecard
    from deploysim.grading import taxonomy

    from deploysim.logs.ingest import input_files

    src = observed_logs(candidate)
    if not (Path(src).exists() or glob.glob(src)):
        return {"observed": f"no production logs yet for {candidate} (looked in {src})", "data_version": "none"}
    tax = taxonomy.load()
    judge = judge_mod.from_env()
    try:
        files = input_files([src])
        n, quarantined, _, table = observe.grade_logs([str(f) for f in files], tax, judge)
    finally:
        if judge is not None:
            judge.close()
    scorecard.write_observed(candidate, table)
    return {"conversations": n, "quarantined": quarantined,
            "observed": {r["behaviour"]: f"{r['rate']:.2%} [{r['ci_low']:.2%}, {r['ci_high']:.2%}] of {r['n_applicable']}"
                         for r in table},
            "data_version": fingerprint(*files, tax.model_dump(), judge.fingerprint() if judge else None)}


def gate_dir(candidate: str) -> Path:
    """Where dbt's release_gate post-hook exports a candidate's rows."""
    d = lake.home() / "lake" / "gate" / f"candidate={candidate}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def report_path(candidate: str) -> Path:
    return lake.home() / "reports" / candidate / "report.html"


def run_report(candidate: str, examples_per_behaviour: int = 3) -> dict[str, Any]:
    from deploysim.grading import taxonomy
    from deploysim.report.render import ReportData, markdown, render_html

    cand = reg.get(candidate)
    gate = lake.read_rows(gate_dir(candidate) / "release_gate.parquet")
    gate.sort(key=lambda r: r["behaviour"])
    records = load_replay(candidate)
    grades = lake.read_rows(lake.lake_path("grade", candidate))
    failing = [r["behaviour"] for r in gate if r["status"] == "fail"]
    primary = taxonomy.load().primary_graders()
    flagged = [g for g in grades if g["system"] == "candidate" and g["flagged"] and g["behaviour"] in failing
               and g["grader"] == primary.get(g["behaviour"])]
    picked: dict[str, list[dict]] = {}
    for g in flagged:
        if len(picked.setdefault(g["behaviour"], [])) < examples_per_behaviour:
            picked[g["behaviour"]].append(g)
    ids = {g["conversation_id"] for gs in picked.values() for g in gs}
    convs = {c.conversation_id: c for c in load_redacted(ids)} if ids else {}
    turns = {r.conversation_id: r.turn for r in records if r.status == "ok"}
    examples = {b: [(convs[g["conversation_id"]], turns[g["conversation_id"]], g["detail"]) for g in gs]
                for b, gs in picked.items()}
    from deploysim.grading import calibration
    from deploysim.estimation import scorecard

    calib, ppi = [], []
    if labels_path(candidate).exists():
        calib = [r.as_dict() for r in calibration.calibration_table(grades, lake.read_rows(labels_path(candidate)),
                                                                    candidate)]
    if lake.lake_path("estimate", candidate).exists():
        ppi = [e for e in lake.read_rows(lake.lake_path("estimate", candidate)) if e.get("ppi_rate") is not None]
    data = ReportData(candidate=candidate, model=cand.model, baseline=cand.baseline, gate=gate,
                      replay=replay_summary(records, replay_options(cand)), examples=examples, scorecard=scorecard.load(candidate),
                      calibration=calib, ppi=ppi)
    out = report_path(candidate)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data))
    md = markdown(data)
    (out.parent / "summary.md").write_text(md)
    return {"verdict": data.verdict, "path": str(out), "markdown": md, "failing": failing}


def residual_pii(paths: list[Path], extra_texts: list[str] = (), metadata: dict[str, Any] | None = None,
                 max_places: int = 20) -> dict[str, Any]:
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
                    places += [{"file": p.name, "record": rec, "field": f, "type": ty}
                               for f, ty in pii_places(column, t)][: max_places - len(places)]
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


def parquet_cells(path: Path, batch_size: int = 1000):
    """(conversation_id or None, column, text) for every non-empty string cell of a Parquet file,
    batch by batch (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    cols = [fld.name for fld in f.schema_arrow if pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)]
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


def quarantine_file(path: Path) -> Path:
    """Move a lake file that holds personal data into the restricted zone:
    <home>/raw/quarantine/<name>-<UTC time>.parquet. Returns where it went."""
    from datetime import datetime, timezone

    dest = lake.raw_dir() / "quarantine" / f"{path.stem}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}{path.suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    return dest


def check_redacted(metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The residual-PII check of the redact output (residual_pii); when it fails, the file is moved
    to the restricted zone (quarantine_file) so that nothing downstream reads it, and
    ``quarantined`` says where."""
    path = lake.lake_path("redacted")
    found = residual_pii([path], metadata=metadata)
    if found["hits"] and path.exists():
        found["quarantined"] = str(quarantine_file(path))
    return found
