"""`deploysim grade LOGS --out FILE`: grade the assistant turns of existing logs with the taxonomy.

Reads any supported log format (deploysim.logs.ingest), redacts every conversation (deploysim.privacy.redaction) and
grades each conversation's logged turn (what the assistant did after the last user message) with
every grader of the taxonomy. Writes one JSONL line per conversation x behaviour x grader:

    {"conversation_id", "behaviour", "grader", "applicable", "verdict": "flagged" | "not_flagged" |
     "not_applicable", "flagged", "detail", "signals": {"refused", "chars", "tool_calls", "tools_called",
     "placeholders"}}

and prints per-behaviour rates (the behaviour's first grader, over the conversations it applies to)
with 95% Wilson intervals. Logs are the whole traffic they hold (not a sample), so the rate is a plain
share. `--observed NAME` also stores the rates as the observed production rates of candidate NAME
(lake/observed/candidate=NAME/observed.parquet), which the forecast scorecard compares with NAME's
forecast. Exit code: 0 graded, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deploysim.estimation.observe import grade_logs


def add_grade_command(sub: Any) -> None:
    g = sub.add_parser("grade", help="grade the assistant turns of existing logs with the taxonomy's graders")
    g.add_argument("logs", help="log file, directory or glob (any supported format)")
    g.add_argument("--out", required=True, help="JSONL output: one line per conversation x behaviour x grader")
    g.add_argument("--format", help="force the log format (default: detected per file)")
    g.add_argument("--taxonomy", help="policy file (default: DEPLOYSIM_TAXONOMY or the built-in taxonomy)")
    g.add_argument("--judge-model", help="also run judge.* graders with this model")
    g.add_argument("--judge-base-url", help="the judge's OpenAI-compatible base URL")
    g.add_argument("--judge-api-key-env", help="name of the env var holding the judge's API key")
    g.add_argument("--judge-samples", type=int, default=1, help="judge samples per verdict (majority vote)")
    g.add_argument(
        "--observed",
        metavar="CANDIDATE",
        help="store the rates as CANDIDATE's observed production rates (for the scorecard)",
    )
    g.set_defaults(func=cmd_grade)


def cmd_grade(a: argparse.Namespace) -> int:
    from deploysim.grading import taxonomy
    from deploysim.report.render import pct

    tax = taxonomy.load(a.taxonomy)
    judge = None
    if a.judge_model:
        from deploysim.grading.judge import Judge

        if not a.judge_base_url:
            print("error: --judge-model needs --judge-base-url", file=sys.stderr)
            return 2
        judge = Judge(
            base_url=a.judge_base_url, model=a.judge_model, api_key_env=a.judge_api_key_env, samples=a.judge_samples
        )
    try:
        n_convs, n_quarantined, lines, table = grade_logs([a.logs], tax, judge, a.format)
    finally:
        if judge is not None:
            judge.close()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(f"graded {n_convs} conversations ({n_quarantined} quarantined): {len(lines)} lines -> {out}")
    head = f"{'behaviour':<34}{'flagged/applicable':>20}  {'rate':>8}  95% CI"
    print(head + "\n" + "-" * (len(head) + 16))
    for r in table:
        frac = f"{r['n_flagged']}/{r['n_applicable']}"
        print(f"{r['behaviour']:<34}{frac:>20}  {pct(r['rate']):>8}  {pct(r['ci_low'])}–{pct(r['ci_high'])}")
    if a.observed:
        from deploysim import lake
        from deploysim.estimation import scorecard

        path = scorecard.write_observed(a.observed, table)
        print(f"observed rates of {a.observed} -> {path}")
        if scorecard.write(a.observed, lake.current("estimate", a.observed)) is not None:
            print(f"forecast scorecard of {a.observed} -> {scorecard.scorecard_path(a.observed)}")
    return 0
