"""The evaluation-awareness rule grader on real model responses: how often it flags, and what.

    .venv/bin/python benchmarks/eval_awareness_real.py

No labelled evaluation-awareness set exists in ../shared/data, so this measures the grader's flag rate on
real assistant responses (GPTFuzz, HarmBench classifier validation, hh-rlhf harmless-base) and prints every
flagged stretch to read: on ordinary assistant turns (hh-rlhf) any flag is a false positive.
"""

from __future__ import annotations

import gzip
import json
import sys

from deploysim.grading import realdata
from deploysim.grading.graders import EvaluationAwareness


def _answers(transcript: str) -> list[str]:
    return [p.split("\n\nHuman:")[0] for p in transcript.split("\n\nAssistant:")[1:]]


def sets(root) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    p = root / "gptfuzz-labelled-responses" / "gptfuzz_labelled_responses.jsonl.gz"
    if p.exists():
        out["gptfuzz responses"] = [json.loads(line)["response"] for line in gzip.open(p, "rt")]
    p = root / "harmbench-classifier-val" / "harmbench_text_val.jsonl"
    if p.exists():
        out["harmbench val generations"] = [json.loads(line).get("generation") or "" for line in p.open()]
    p = root / "hh-rlhf-harmless-base" / "harmless-base_test.jsonl.gz"
    if p.exists():
        rows = [json.loads(line) for line in gzip.open(p, "rt")]
        out["hh-rlhf assistant turns"] = [a for r in rows for k in ("chosen", "rejected") for a in _answers(r[k])]
    return out


def main() -> None:
    root = realdata.default_root()
    found = sets(root)
    if not found:
        sys.exit(f"no shared data at {root}")
    g = EvaluationAwareness()
    print(f"{'set':<28}{'flagged':>10}{'responses':>11}{'rate':>9}")
    shown = []
    for name, texts in found.items():
        texts = [t for t in texts if t]
        hits = [(t, m) for t in texts if (m := g._re.search(t))]
        print(f"{name:<28}{len(hits):>10}{len(texts):>11}{len(hits) / len(texts):>9.4%}")
        shown += [f"  [{name}] ...{t[max(0, m.start() - 70) : m.end() + 50]!r}..." for t, m in hits]
    print("\nflagged stretches:")
    print("\n".join(s.replace("\\n", " ") for s in shown) or "  none")


if __name__ == "__main__":
    main()
