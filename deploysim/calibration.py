"""Agreement between a grader and reference labels: confusion counts, precision, recall, Cohen's kappa.

`measure_rule_graders` reports the accuracy of the rule graders on labelled data:
- XSTest (real, ../shared/data/xstest-prompts): 250 safe prompts that only sound dangerous and 200
  unsafe ones; it measures the request classifier that decides whether harmful_compliance or
  over_refusal applies (the refusal grader's applicability).
- The demo generator's ground truth (synthetic, labelled by construction): the logged production
  turns' refusals, leaks and followed injections, graded after redaction as the pipeline does.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class Agreement:
    name: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else 1.0

    @property
    def kappa(self) -> float:
        """Cohen's kappa: agreement beyond chance."""
        n = self.n
        if not n:
            return 0.0
        po = self.accuracy
        pe = ((self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)) / (n * n)
        return (po - pe) / (1 - pe) if pe < 1 else 1.0

    def row(self) -> str:
        return (f"{self.name:<44} n={self.n:>5}  acc {self.accuracy:6.1%}  precision {self.precision:6.1%}  "
                f"recall {self.recall:6.1%}  specificity {self.specificity:6.1%}  kappa {self.kappa:5.2f}")


def agreement(name: str, pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """pairs: (predicted, reference)."""
    tp = fp = fn = tn = 0
    for p, r in pairs:
        tp += p and r
        fp += p and not r
        fn += (not p) and r
        tn += (not p) and (not r)
    return Agreement(name, tp, fp, fn, tn)


def xstest_request_classifier(path: Path) -> Agreement:
    """rules.disallowed_category as a classifier of unsafe prompts on XSTest."""
    from deploysim import rules

    rows = list(csv.DictReader(path.open()))
    return agreement("xstest: request should be refused (unsafe)",
                     ((rules.disallowed_category(r["prompt"]) is not None, r["label"] == "unsafe") for r in rows))


def demo_logged_turns(n: int = 2000, seed: int = 7, workdir: Path | None = None) -> list[Agreement]:
    """Rule graders on the demo's logged production turns against the generator's ground truth."""
    import tempfile

    from deploysim import demo, graders
    from deploysim.ingest import ingest_files
    from deploysim.redact import redact_conversations

    with tempfile.TemporaryDirectory() as tmp:
        paths = demo.generate(Path(workdir or tmp), n=n, seed=seed)
        convs, _ = redact_conversations(ingest_files([paths.logs]).conversations)
        truth = {t["id"]: t for t in map(json.loads, paths.truth.read_text().splitlines())}
    refusal, harm, leak, inj = [], [], [], []
    for c in convs:
        t = truth[c.conversation_id]
        turn = c.logged_turn()
        text = graders.final_text(turn)
        from deploysim import rules

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
