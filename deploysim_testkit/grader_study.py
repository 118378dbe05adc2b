"""Grader studies on the test instrument's data: rule graders and judges against known truths
(the demo generator's, XSTest's labels). Used by tests and benchmarks, never by the pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from deploysim.grading.calibration import Agreement, agreement


def xstest_request_classifier(path: Path) -> Agreement:
    """rules.disallowed_category as a classifier of unsafe prompts on XSTest."""
    from deploysim import rules

    rows = list(csv.DictReader(path.open()))
    return agreement(
        "xstest: request should be refused (unsafe)",
        ((rules.disallowed_category(r["prompt"]) is not None, r["label"] == "unsafe") for r in rows),
    )


def demo_logged_turns(
    n: int = 2000, seed: int = 7, workdir: Path | None = None, plain_only: bool = False
) -> list[Agreement]:
    """Rule graders on the demo's logged production turns against the generator's ground truth, which
    holds cases that text rules misread (the truth's "hard" list); plain_only leaves those out."""
    import tempfile

    from deploysim import rules
    from deploysim.grading import graders
    from deploysim.logs.ingest import ingest_files
    from deploysim.privacy.redaction import redact_conversations
    from deploysim_testkit import demo

    with tempfile.TemporaryDirectory() as tmp:
        paths = demo.generate(Path(workdir or tmp), n=n, seed=seed)
        convs, _ = redact_conversations(ingest_files([paths.logs]).conversations)
        truth = {t["id"]: t for t in map(json.loads, paths.truth.read_text().splitlines())}
    refusal, harm, leak, inj = [], [], [], []
    for c in convs:
        t = truth[c.conversation_id]
        if plain_only and t["hard"]:
            continue
        turn = c.logged_turn()
        text = graders.final_text(turn)
        refusal.append((rules.is_refusal(text), bool(t["baseline_refused"])))
        if graders.HarmfulCompliance().applies(c):
            harm.append((graders.HarmfulCompliance().grade(c, turn).flagged, bool(t["baseline_complied"])))
        leak.append((graders.PiiLeakage().grade(c, turn).flagged, bool(t["baseline_leaked"])))
        g = graders.InjectionFollowing()
        if g.applies(c):
            inj.append((g.grade(c, turn).flagged, bool(t["baseline_followed_injection"])))
    return [
        agreement("demo: refusal detector (is_refusal)", refusal),
        agreement("demo: harmful_compliance grader", harm),
        agreement("demo: pii_leakage grader", leak),
        agreement("demo: injection_following grader", inj),
    ]


def judge_on_demo(judge, behaviours: list[str], n: int = 600, seed: int = 7) -> list[Agreement]:
    """A Judge on the demo's logged production turns, against the world's truth (judge_profiles.truth: what
    the generator asked and answered, not the rule graders). Only turns the judge is asked about (the
    taxonomy's and the rule grader's domain); where the behaviour does not really apply, it is absent."""
    import tempfile

    from deploysim.grading import taxonomy
    from deploysim.grading.graders import RULE_GRADERS
    from deploysim.logs.ingest import ingest_files
    from deploysim.privacy.redaction import redact_conversations
    from deploysim_testkit import demo
    from deploysim_testkit.judge_profiles import truth

    with tempfile.TemporaryDirectory() as tmp:
        paths = demo.generate(Path(tmp), n=n, seed=seed)
        convs, _ = redact_conversations(ingest_files([paths.logs]).conversations)
    tax = taxonomy.load()
    out = []
    for b in behaviours:
        spec, rule = tax.get(b), RULE_GRADERS[f"rule.{b}"]
        todo = [c for c in convs if spec.applies_to.matches(c) and rule.applies(c)]
        verdicts = judge.judge_many([(b, c, c.logged_turn(), spec.description) for c in todo])
        # a turn with no valid verdict after the re-asks is left out (counted in judge.counters.invalid)
        pairs = [(v.flagged, truth(b, c, c.logged_turn())) for c, v in zip(todo, verdicts) if v.graded]
        out.append(agreement(f"judge {judge.model}: {b}", pairs))
    return out
