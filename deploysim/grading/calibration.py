"""Agreement between a grader and reference labels: confusion counts, precision, recall, Cohen's kappa.

`measure_rule_graders` reports the accuracy of the rule graders on labelled data:
- XSTest (real, ../shared/data/xstest-prompts): 250 safe prompts that only sound dangerous and 200
  unsafe ones; it measures the request classifier that decides whether harmful_compliance or
  over_refusal applies (the refusal grader's applicability).
- The demo generator's ground truth (synthetic, labelled by construction): the logged production
  turns' refusals, leaks and followed injections, graded after redaction as the pipeline does.

Human labels ({conversation_id, behaviour, label[, system][, candidate]}, CSV or JSONL) are imported
with `import_labels`; `calibration_table` gives precision, recall and Cohen's kappa per behaviour and
grader against them, and the estimate step adds a PPI++ corrected rate where candidate labels exist.
`judge_on_demo` measures an LLM judge against a known truth.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


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
        return (
            f"{self.name:<44} n={self.n:>5}  acc {self.accuracy:6.1%}  precision {self.precision:6.1%}  "
            f"recall {self.recall:6.1%}  specificity {self.specificity:6.1%}  kappa {self.kappa:5.2f}"
        )


def agreement(name: str, pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """pairs: (predicted, reference)."""
    tp = fp = fn = tn = 0
    for p, r in pairs:
        tp += p and r
        fp += p and not r
        fn += (not p) and r
        tn += (not p) and (not r)
    return Agreement(name, tp, fp, fn, tn)


# ---------------------------------------------------------------------------- human labels


class HumanLabel(BaseModel):
    """One human label: does this conversation's turn (of `system`) show `behaviour`?"""

    model_config = ConfigDict(extra="ignore")
    conversation_id: str = Field(min_length=1)
    behaviour: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: bool  # accepts true/false, 1/0, yes/no
    system: Literal["candidate", "baseline"] = "candidate"
    candidate: str | None = None  # which candidate's turn (candidate labels); None: any

    @field_validator("label", mode="before")
    @classmethod
    def _truthy(cls, v: Any) -> Any:
        if isinstance(v, str):
            s = v.strip().lower()
            if s in ("1", "true", "yes", "y", "t"):
                return True
            if s in ("0", "false", "no", "n", "f"):
                return False
        return v

    @field_validator("system", "candidate", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return None if v == "" else v


def load_labels(path: Path | str) -> list[HumanLabel]:
    """Labels from a CSV (header row) or JSONL file; an invalid row raises ValueError naming its line."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        rows = [(i + 2, r) for i, r in enumerate(csv.DictReader(path.open(encoding="utf-8")))]
    else:
        rows = [
            (i + 1, json.loads(line))
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines())
            if line.strip()
        ]
    out = []
    for line, r in rows:
        if isinstance(r, dict) and r.get("system") is None:
            r = {k: v for k, v in r.items() if k != "system"}
        try:
            out.append(HumanLabel.model_validate(r))
        except ValidationError as e:
            raise ValueError(f"{path.name}:{line}: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None
    return out


def label_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("conversation_id", pa.string()),
            ("behaviour", pa.string()),
            ("label", pa.bool_()),
            ("system", pa.string()),
            ("candidate", pa.string()),
        ]
    )


def import_labels(path: Path | str, dest: Path | None = None) -> int:
    """Write labels to the lake (lake/labels/imported.parquet), where each candidate's labels step finds them."""
    from deploysim import lake

    labels = load_labels(path)
    dest = dest or lake.lake_path("labels", name="imported")
    return lake.write_rows(dest, [lab.model_dump() for lab in labels], schema=label_schema())


@dataclass(frozen=True)
class CalibrationRow:
    behaviour: str
    grader: str
    agreement: Agreement

    def as_dict(self) -> dict:
        a = self.agreement
        return {
            "behaviour": self.behaviour,
            "grader": self.grader,
            "n": a.n,
            "tp": a.tp,
            "fp": a.fp,
            "fn": a.fn,
            "tn": a.tn,
            "precision": a.precision,
            "recall": a.recall,
            "kappa": a.kappa,
        }


def calibration_table(
    grades: list[dict], labels: Sequence[dict | HumanLabel], candidate: str | None = None
) -> list[CalibrationRow]:
    """Per behaviour and grader: the grader's verdicts against the human labels on the same turns.

    A grader that did not apply to a labelled turn counts as "not flagged" there.
    """
    human: dict[tuple[str, str, str], bool] = {}
    for lab in labels:
        lab = lab if isinstance(lab, HumanLabel) else HumanLabel.model_validate(lab)
        if lab.system == "candidate" and candidate and lab.candidate not in (None, candidate):
            continue
        human[(lab.behaviour, lab.conversation_id, lab.system)] = lab.label
    pairs: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for g in grades:
        key = (g["behaviour"], g["conversation_id"], g["system"])
        if key in human:
            pairs.setdefault((g["behaviour"], g["grader"]), []).append(
                (bool(g["applicable"]) and bool(g["flagged"]), human[key])
            )
    return [CalibrationRow(b, gid, agreement(f"{b} / {gid}", ps)) for (b, gid), ps in sorted(pairs.items())]


def format_table(rows: list[CalibrationRow]) -> str:
    head = f"{'behaviour':<34}{'grader':<38}{'n':>5}{'precision':>11}{'recall':>9}{'kappa':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        a = r.agreement
        lines.append(f"{r.behaviour:<34}{r.grader:<38}{a.n:>5}{a.precision:>11.1%}{a.recall:>9.1%}{a.kappa:>8.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the judge against a known truth
