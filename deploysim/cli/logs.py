"""`deploysim ingest` and `deploysim redact`: check and share log files without the pipeline.

deploysim ingest PATH... [--format F] [--tools FILE] [--quarantine FILE] [LAYOUT]
    detected format per file, counts (read, accepted, quarantined, duplicates), what was
    read leniently, the quarantine with reasons, files quarantined whole (empty, not a log,
    corrupt or truncated) and files skipped. Exit 0 when at least one conversation was accepted,
    else 2.

deploysim redact IN OUT [--format F] [--ner/--no-ner] [--policy TYPE=POLICY ...]
    redacts any supported log file (or directory, or glob) into OpenAI-format JSONL
    (OUT ending in .gz or .zst is compressed) and prints counts per entity type.

LAYOUT (ingest, redact, and also grade and run): --records-path KEY[.KEY] (where a JSON
document's list of records is), --messages-field PATH (the turns inside each record),
--role-field PATH and --content-field PATH (a turn's role and content).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import time
from pathlib import Path
from typing import IO

from deploysim import settings

EXIT_OK, EXIT_ERROR = 0, 2


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(label: str):
    start = time.monotonic()

    def show(counts, done: int, total: int) -> None:
        rate = counts.bytes_read / 1e6 / max(time.monotonic() - start, 1e-9)
        _err(
            f"  {label}: file {min(done + 1, total)}/{total}, {counts.n_read:,} records, "
            f"{counts.bytes_read / 1e6:,.1f} MB read ({rate:.1f} MB/s), {counts.quarantined:,} quarantined"
        )

    return show


def add_layout_options(p: argparse.ArgumentParser) -> None:
    """--records-path, --messages-field, --role-field, --content-field (logs in other layouts)."""
    p.add_argument(
        "--records-path", metavar="KEY[.KEY]", help="where the list of records is in a JSON document (e.g. data.items)"
    )
    p.add_argument(
        "--messages-field", metavar="PATH", help="the list of turns inside each record (e.g. instance.conversation_a)"
    )
    p.add_argument("--role-field", metavar="PATH", help="a turn's role (default: role, from, speaker or author)")
    p.add_argument(
        "--content-field", metavar="PATH", help="a turn's content (default: content, value, text or message)"
    )


def layout(a: argparse.Namespace):
    """The FieldMap of the layout options (InputError for a malformed path)."""
    from deploysim.logs.formats.documents import FieldMap

    return FieldMap(a.records_path, a.messages_field, a.role_field, a.content_field)


def _print_leniencies(counts) -> None:
    if counts.batch_answers_joined:
        print(f"OpenAI Batch answers joined to their requests: {counts.batch_answers_joined:,}")
    lines = counts.leniency_lines()
    if lines:
        print("read leniently (accepted records, occurrences):")
        for line in lines:
            print(f"  {line}")


def _tools(path: str | None):
    from deploysim.logs.ingest import load_tools

    return load_tools(path) if path else None


def cmd_ingest(a: argparse.Namespace) -> int:
    from collections import Counter

    from deploysim.logs.ingest import IngestCounts, IngestError, iter_ingest
    from deploysim.schemas import Conversation

    counts = IngestCounts()
    shown = 0
    fields = layout(a)
    qfile: IO[str] | None = open(a.quarantine, "w", encoding="utf-8") if a.quarantine else None
    try:
        for item in iter_ingest(
            a.paths,
            a.format,
            tools=_tools(a.tools),
            counts=counts,
            progress=None if a.quiet else _progress("ingest"),
            fields=fields,
        ):
            if isinstance(item, Conversation):
                continue
            if qfile:
                qfile.write(json.dumps(item.model_dump(), ensure_ascii=False) + "\n")
            if item.line and shown < a.show:  # line 0: a whole file, listed below
                print(f"  quarantined {item.source_file}:{item.line}: {item.reason}")
                shown += 1
    except IngestError as e:
        _err(f"error: {e}")
        return EXIT_ERROR
    finally:
        if qfile:
            qfile.close()
    if counts.quarantined > shown:
        print(
            f"  ... and {counts.quarantined - shown:,} more quarantined"
            + (f" (all in {a.quarantine})" if a.quarantine else " (use --quarantine FILE to keep them all)")
        )
    for path, fmt in counts.formats.items():
        print(f"{path}: {fmt}")
    for path, why in counts.files_quarantined.items():
        print(f"{path}: quarantined file: {why}")
    print(
        f"read {counts.n_read:,}: accepted {counts.accepted:,}, quarantined {counts.quarantined:,}, "
        f"duplicates dropped {counts.duplicates:,}"
    )
    for reason, n in counts.reasons.most_common(10):
        print(f"  {n:>8,}  {reason}")
    _print_leniencies(counts)
    print(
        f"files: {len(counts.files):,} opened, {len(counts.files_quarantined):,} quarantined, "
        f"{len(counts.files_skipped):,} skipped"
    )
    for why, n in Counter(counts.files_skipped.values()).most_common():
        print(f"  {n:>8,}  skipped: {why}")
    for path, why in list(counts.files_skipped.items())[: a.show]:
        print(f"  skipped {path}: {why}")
    assert counts.n_read == counts.accepted + counts.quarantined + counts.duplicates
    return EXIT_OK if counts.accepted else EXIT_ERROR


def _open_out(path: Path, suffix: str) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8")
    if suffix in (".zst", ".zstd"):
        import zstandard

        return io.TextIOWrapper(zstandard.ZstdCompressor().stream_writer(open(path, "wb")), encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def cmd_redact(a: argparse.Namespace) -> int:
    from collections import Counter

    from deploysim.logs.ingest import IngestCounts, IngestError, iter_ingest
    from deploysim.privacy.ner import NerUnavailable
    from deploysim.privacy.policies import RedactConfig, RedactConfigError
    from deploysim.privacy.redaction import iter_redacted, split_counts
    from deploysim.schemas import Conversation

    try:
        overrides = {}
        if a.ner is not None:
            overrides["ner"] = a.ner
        if a.policy:
            pols = []
            for item in a.policy:
                t, _, pol = item.partition("=")
                pols.append((t.strip().upper(), pol.strip().lower()))
            overrides["policies"] = tuple(pols)
        config = RedactConfig.from_settings(settings.load(), **overrides)
    except RedactConfigError as e:
        _err(f"error: {e}")
        return EXIT_ERROR
    out = Path(a.out)
    if out.exists() and out.is_dir():
        _err(f"error: {out} is a directory; give a file name")
        return EXIT_ERROR
    counts = IngestCounts()
    fields = layout(a)
    totals: Counter[str] = Counter()
    written = 0
    tmp = out.with_name(out.name + ".partial")
    try:
        convs = (
            c
            for c in iter_ingest(
                [a.input],
                a.format,
                tools=_tools(a.tools),
                counts=counts,
                progress=None if a.quiet else _progress("redact"),
                fields=fields,
            )
            if isinstance(c, Conversation)
        )
        with _open_out(tmp, out.suffix) as fh:
            for red, found in iter_redacted(convs, config, workers=a.workers or settings.load().redact_workers):
                totals.update(found)
                if red is None:
                    continue
                rec = {
                    "id": red.conversation_id,
                    "topic": red.topic,
                    "surface": red.surface,
                    "messages": [m.to_openai() for m in red.messages],
                    "tools": red.tools,
                    "metadata": red.metadata,
                }
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                written += 1
        tmp.replace(out)
    except (IngestError, NerUnavailable) as e:
        tmp.unlink(missing_ok=True)
        _err(f"error: {e}")
        return EXIT_ERROR
    dropped = totals.pop("conversations_dropped", 0)
    print(
        f"read {counts.n_read:,}: accepted {counts.accepted:,}, quarantined {counts.quarantined:,}, "
        f"duplicates dropped {counts.duplicates:,}; wrote {written:,} redacted conversations to {out}"
        + (f" ({dropped:,} dropped by policy)" if dropped else "")
    )
    for path, why in counts.files_quarantined.items():
        print(f"{path}: quarantined file: {why}")
    _print_leniencies(counts)
    print(f"NER: {'on (' + (config.ner_model or 'default model') + ')' if config.ner else 'off'}")
    types, fields = split_counts(totals)
    for type_, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {type_:<16}{n:>10,}")
    if fields:  # personal data outside the message text: counts per field, never values
        _err(
            "warning: personal data found outside the message text, redacted in "
            + ", ".join(f"{name} ({n:,} conversations)" for name, n in sorted(fields.items()))
        )
    return EXIT_OK if written else EXIT_ERROR


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `ingest` and `redact` commands to the deploysim parser."""
    from deploysim.logs.formats import FORMATS

    i = sub.add_parser("ingest", help="check log files: detected format, counts, duplicates, quarantine with reasons")
    i.add_argument("paths", nargs="+", help="files, directories or globs (plain, .gz or .zst)")
    i.add_argument("--format", choices=FORMATS, help="force a format (default: detected per file)")
    i.add_argument("--tools", help="JSON file of tool schemas for records that carry none (e.g. tau-bench)")
    i.add_argument("--quarantine", metavar="FILE", help="write every quarantined record (file, line, reason) as JSONL")
    i.add_argument("--show", type=int, default=20, help="quarantined records to print (default 20)")
    i.add_argument("--quiet", action="store_true", help="no progress lines")
    add_layout_options(i)
    i.set_defaults(func=cmd_ingest)

    r = sub.add_parser(
        "redact", help="redact a log file of any format into OpenAI-format JSONL; prints counts per type"
    )
    r.add_argument("input", help="file, directory or glob")
    r.add_argument("out", help="output JSONL (.gz/.zst to compress)")
    r.add_argument("--format", choices=FORMATS, help="force a format (default: detected per file)")
    r.add_argument("--tools", help="JSON file of tool schemas for records that carry none")
    ner = r.add_mutually_exclusive_group()
    ner.add_argument(
        "--ner", dest="ner", action="store_true", default=None, help="names/locations/organisations with spaCy"
    )
    ner.add_argument("--no-ner", dest="ner", action="store_false", help="deterministic detectors only")
    r.add_argument(
        "--policy",
        action="append",
        metavar="TYPE=POLICY",
        help="replace (default), mask, hash or drop, e.g. --policy SSN=drop --policy EMAIL=hash",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        help="redact in N worker processes (default DEPLOYSIM_REDACT_WORKERS or 1; order is kept)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    add_layout_options(r)
    r.set_defaults(func=cmd_redact)
