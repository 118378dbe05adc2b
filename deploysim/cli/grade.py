"""`deploysim grade LOGS --out FILE`: grade the assistant turns of existing logs with the taxonomy.

Reads any supported log format (deploysim.logs.ingest), redacts every conversation (deploysim.privacy.redaction) and
grades each conversation's logged turn (what the assistant did after the last user message) with
every grader of the taxonomy. Writes one JSONL line per conversation x behaviour x grader:

    {"conversation_id", "behaviour", "grader", "applicable", "verdict": "flagged" | "not_flagged" |
     "not_applicable", "flagged", "detail", "signals": {"refused", "chars", "tool_calls", "tools_called",
     "placeholders"}}

and prints per-behaviour rates (the behaviour's first grader, over the conversations it applies to)
with 95% Wilson intervals. Logs are the whole traffic they hold (not a sample), so the rate is a plain
share.

`--labels LABELS` (CSV or JSONL: conversation_id, behaviour, label = 1 | 0 | na) adds, per behaviour,
a rate corrected by PPI++ for the graders' domain and verdict (behaviour present among the
conversations the humans say it applies to, equal weights), and prints a calibration table of every
grader against the labels. A bad label file, a behaviour the taxonomy lacks or a conversation
labelled both ways stops the command before anything is written (exit 2); labels of conversations
that are not in the logs (or have no assistant turn) are left out with a warning and counted.
`--rates RATES.json` writes {"behaviours": {b: {"flagged", "applicable", "rate", "ci_low", "ci_high",
"corrected": {"rate", "ci_low", "ci_high", "labels"} or null}}} (rates as fractions).

`--observed NAME` also stores the rates as the observed production rates of candidate NAME
(lake/observed/candidate=NAME/observed.parquet), which the forecast scorecard compares with NAME's
forecast. Exit code: 0 graded, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from deploysim.estimation.observe import grade_logs


def add_grade_command(sub: Any) -> None:
    from deploysim.cli.logs import add_layout_options

    g = sub.add_parser("grade", help="grade the assistant turns of existing logs with the taxonomy's graders")
    g.add_argument("logs", help="log file, directory or glob (any supported format)")
    g.add_argument("--out", required=True, help="JSONL output: one line per conversation x behaviour x grader")
    g.add_argument("--format", help="force the log format (default: detected per file)")
    g.add_argument("--taxonomy", help="policy file (default: DEPLOYSIM_TAXONOMY or the built-in taxonomy)")
    g.add_argument("--judge-model", help="also run judge.* graders with this model")
    g.add_argument("--judge-base-url", help="the judge's OpenAI-compatible base URL")
    g.add_argument("--judge-api-key-env", help="name of the env var holding the judge's API key")
    g.add_argument("--judge-samples", type=int, default=1, help="judge samples per verdict (majority vote)")
    g.add_argument("--labels", help="human labels (CSV or JSONL: conversation_id, behaviour, label = 1, 0 or na)")
    g.add_argument("--rates", help="write the rates (and corrected rates) as JSON to this file")
    g.add_argument(
        "--observed",
        metavar="CANDIDATE",
        help="store the rates as CANDIDATE's observed production rates (for the scorecard)",
    )
    add_layout_options(g)
    g.set_defaults(func=cmd_grade)


def cmd_grade(a: argparse.Namespace) -> int:
    from deploysim.cli.logs import layout
    from deploysim.estimation import observe
    from deploysim.grading import calibration, taxonomy

    fields = layout(a)  # a malformed path fails before any work
    tax = taxonomy.load(a.taxonomy)
    labels = None
    if a.labels:  # checked before any grading, so a bad file writes nothing
        labels = observe.check_labels(calibration.load_labels(a.labels), [b.id for b in tax.behaviours])
    judge = None
    if a.judge_model:
        from deploysim.grading.judge import Judge

        if not a.judge_base_url:
            print("error: --judge-model needs --judge-base-url", file=sys.stderr)
            return 2
        judge = Judge(
            base_url=a.judge_base_url, model=a.judge_model, api_key_env=a.judge_api_key_env, samples=a.judge_samples
        )
    id_map: dict[str, str] = {}
    try:
        n_convs, n_quarantined, lines, table = grade_logs([a.logs], tax, judge, a.format, id_map=id_map, fields=fields)
    finally:
        if judge is not None:
            judge.close()
    order = [b.id for b in tax.behaviours]
    lab = observe.with_labels(lines, labels, tax.primary_graders(), order, id_map) if labels is not None else None
    outputs = [(Path(a.out), "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))]
    if a.rates:
        rates = observe.rates_json(table, lab.corrected if lab else None)
        outputs.append((Path(a.rates), json.dumps(rates, indent=2) + "\n"))
    _write_all(outputs)
    print(f"graded {n_convs} conversations ({n_quarantined} quarantined): {len(lines)} lines -> {a.out}")
    _print_rates(table, lab.corrected if lab else None)
    if lab is not None:
        print(f"\n{lab.used} labels on graded conversations; calibration against them:")
        print(calibration.format_table(lab.calibration))
        if lab.unknown_conversations:
            print(
                f"warning: {lab.unknown_conversations} labelled conversations are not among the graded ones; "
                "their labels were left out",
                file=sys.stderr,
            )
    if a.rates:
        print(f"rates -> {a.rates}")
    if a.observed:
        from deploysim import lake
        from deploysim.estimation import scorecard

        path = scorecard.write_observed(a.observed, table)
        print(f"observed rates of {a.observed} -> {path}")
        if scorecard.write(a.observed, lake.current("estimate", a.observed)) is not None:
            print(f"forecast scorecard of {a.observed} -> {scorecard.scorecard_path(a.observed)}")
    return 0


def _write_all(outputs: list[tuple[Path, str]]) -> None:
    """Write every file to a temporary name first, then move them all into place."""
    tmps = []
    for path, text in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmps.append((tmp, path))
    for tmp, path in tmps:
        tmp.replace(path)


def _print_rates(table: list[dict], corrected: dict[str, dict | None] | None) -> None:
    from deploysim.report.render import pct

    head = f"{'behaviour':<34}{'flagged/applicable':>20}  {'rate':>8}  {'95% CI':<17}"
    if corrected is not None:
        head += f"{'corrected':>10}  {'95% CI':<17}{'labels':>7}"
    print(head + "\n" + "-" * len(head))
    for r in table:
        frac = f"{r['n_flagged']}/{r['n_applicable']}"
        line = f"{r['behaviour']:<34}{frac:>20}  {pct(r['rate']):>8}  {pct(r['ci_low']) + '–' + pct(r['ci_high']):<17}"
        c = (corrected or {}).get(r["behaviour"])
        if c is not None:
            line += f"{pct(c['rate']):>10}  {pct(c['ci_low']) + '–' + pct(c['ci_high']):<17}{c['labels']:>7}"
        elif corrected is not None:
            line += f"{'-':>10}  {'(fewer than 2 labels)':<17}"
        print(line)
