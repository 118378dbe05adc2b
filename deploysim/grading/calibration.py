"""Agreement between a grader and reference labels: confusion counts, precision, recall, Cohen's kappa.

`measure_rule_graders` reports the accuracy of the rule graders on labelled data:
- XSTest (real, ../shared/data/xstest-prompts): 250 safe prompts that only sound dangerous and 200
  unsafe ones; it measures the request classifier that decides whether harmful_compliance or
  over_refusal applies (the refusal grader's applicability).
- The demo generator's ground truth (synthetic, labelled by construction): the logged production
  turns' refusals, leaks and followed injections, graded after redaction as the pipeline does.

Human labels ({conversation_id, behaviour, label[, system][, candidate]}, CSV or JSONL; label 1, 0
or na: the behaviour does not apply) are imported with `import_labels`; `calibration_table` gives
precision, recall and Cohen's kappa per behaviour and grader against them, and how often the
grader's domain agrees with the humans'; the estimate step adds a PPI++ corrected rate (a ratio
that corrects the domain too) where candidate labels exist.
`judge_on_demo` measures an LLM judge against a known truth.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator

if TYPE_CHECKING:
    from upath import UPath


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


NA_LABELS = ("na", "n/a")  # the behaviour does not apply to this conversation (also JSON null)


class HumanLabel(BaseModel):
    """One human label of a conversation's turn (of `system`) for `behaviour`: True (present),
    False (absent) or None (na: the behaviour does not apply to this conversation)."""

    model_config = ConfigDict(extra="ignore")
    conversation_id: str = Field(min_length=1)
    behaviour: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: bool | None  # 1/0, true/false, yes/no; na, n/a or null: does not apply
    system: Literal["candidate", "baseline"] = "candidate"
    candidate: str | None = None  # which candidate's turn (candidate labels); None: any

    @computed_field  # type: ignore[prop-decorator]
    @property
    def applies(self) -> bool:
        """The human's domain: False for na."""
        return self.label is not None

    @field_validator("label", mode="before")
    @classmethod
    def _three_valued(cls, v: Any) -> Any:
        if isinstance(v, str):
            s = v.strip().lower()
            if s in ("1", "true", "yes", "y", "t"):
                return True
            if s in ("0", "false", "no", "n", "f"):
                return False
            if s in NA_LABELS:
                return None
            raise ValueError(f"label {v!r} is not 1, 0 or na")
        if isinstance(v, float) and v in (0.0, 1.0):
            return bool(v)
        return v

    @field_validator("system", "candidate", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return None if v == "" else v


def load_labels(path: Path | str) -> list[HumanLabel]:
    """Labels from a CSV (header row) or JSONL file; an invalid row raises ValueError naming its line.

    `label` is required on every row: 1, 0 or na (JSON null also means na; an empty CSV cell is an
    error, since it may be a forgotten label)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                missing = {"conversation_id", "behaviour", "label"} - set(reader.fieldnames or [])
                if missing:
                    raise ValueError(f"{path.name}:1: missing column(s) {', '.join(sorted(missing))}")
                rows: list[tuple[int, Any]] = [(reader.line_num, r) for r in reader]
        else:
            rows = []
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append((i, json.loads(line)))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path.name}:{i}: not JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read labels ({e})") from None
    out = []
    for lineno, r in rows:
        if not isinstance(r, dict):
            raise ValueError(f"{path.name}:{lineno}: expected an object with conversation_id, behaviour, label")
        if "label" not in r:
            raise ValueError(f"{path.name}:{lineno}: no label (write 1, 0 or na)")
        if isinstance(r["label"], str) and not r["label"].strip():
            raise ValueError(f"{path.name}:{lineno}: empty label (write 1, 0 or na)")
        if r.get("system") is None:
            r = {k: v for k, v in r.items() if k != "system"}
        try:
            out.append(HumanLabel.model_validate(r))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{path.name}:{lineno}: {where}: {msg}") from None
    return out


def label_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("conversation_id", pa.string()),
            ("behaviour", pa.string()),
            ("label", pa.bool_()),  # null: na, the behaviour does not apply
            ("applies", pa.bool_()),
            ("system", pa.string()),
            ("candidate", pa.string()),
        ]
    )


def import_labels(path: Path | str, dest: Path | UPath | None = None) -> int:
    """Write labels to the lake (lake/labels/imported.parquet), where each candidate's labels step finds them."""
    from deploysim import lake

    labels = load_labels(path)
    dest = dest or lake.lake_path("labels", name="imported")
    return lake.write_rows(dest, [lab.model_dump() for lab in labels], schema=label_schema())


@dataclass(frozen=True)
class CalibrationRow:
    behaviour: str
    grader: str
    agreement: Agreement  # verdicts where the humans say the behaviour applies
    domain: Agreement  # the grader's "applies" against the humans' (na = does not apply)

    def as_dict(self) -> dict:
        a, d = self.agreement, self.domain
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
            "domain_n": d.n,
            "domain_agreement": d.accuracy,
            "domain_precision": d.precision,
            "domain_recall": d.recall,
        }


def calibration_table(
    grades: list[dict], labels: Sequence[dict | HumanLabel], candidate: str | None = None
) -> list[CalibrationRow]:
    """Per behaviour and grader: the grader's verdicts against the human labels on the same turns.

    Verdicts are compared where the humans say the behaviour applies (label 1 or 0); there a grader
    that did not apply counts as "not flagged". The domain is compared on every labelled turn: the
    grader's "applies" against the humans' (na: does not apply).
    """
    human: dict[tuple[str, str, str], bool | None] = {}
    for lab in labels:
        lab = lab if isinstance(lab, HumanLabel) else HumanLabel.model_validate(lab)
        if lab.system == "candidate" and candidate and lab.candidate not in (None, candidate):
            continue
        human[(lab.behaviour, lab.conversation_id, lab.system)] = lab.label
    verdicts: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    domains: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for g in grades:
        key = (g["behaviour"], g["conversation_id"], g.get("system") or "candidate")
        if key not in human:
            continue
        gid = (g["behaviour"], g["grader"])
        label = human[key]
        domains.setdefault(gid, []).append((bool(g["applicable"]), label is not None))
        verdicts.setdefault(gid, [])
        if label is not None:
            verdicts[gid].append((bool(g["applicable"]) and bool(g["flagged"]), label))
    return [
        CalibrationRow(b, gid, agreement(f"{b} / {gid}", verdicts[(b, gid)]), agreement(f"{b} / {gid}", ds))
        for (b, gid), ds in sorted(domains.items())
    ]


def format_table(rows: list[CalibrationRow]) -> str:
    """The calibration table as text: verdict precision, recall and kappa; domain agreement."""
    head = (
        f"{'behaviour':<32}{'grader':<34}{'n':>5}{'precision':>10}{'recall':>8}{'kappa':>7}"
        f"{'domain n':>10}{'agree':>8}{'d.prec':>8}{'d.recall':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        a, d = r.agreement, r.domain
        lines.append(
            f"{r.behaviour:<32}{r.grader:<34}{a.n:>5}{_p(a.precision, a.tp + a.fp):>10}{_p(a.recall, a.tp + a.fn):>8}"
            f"{f'{a.kappa:.2f}' if a.n else '-':>7}{d.n:>10}{_p(d.accuracy, d.n):>8}"
            f"{_p(d.precision, d.tp + d.fp):>8}{_p(d.recall, d.tp + d.fn):>9}"
        )
    return "\n".join(lines)


def _p(x: float, n: int) -> str:
    """A share, or "-" when nothing is behind it."""
    return f"{x:.1%}" if n else "-"


# ---------------------------------------------------------------------------- the judge against a known truth
