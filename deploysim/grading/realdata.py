"""Readers for the public labelled data sets the graders are built and measured on, and their fixed split.

Every set is split once, by a stable hash of a group key (a behaviour, a question, a task), into a
build part (used to write rules, train models and choose thresholds) and a held-back part (used
only to report). Groups keep near-duplicates (the same behaviour under two attacks, the same
question under 77 templates, the same task for four models) on one side. Where upstream has its
own split, it is kept: GPTFuzz's train/evaluate (by question) and Self-Instruct's seed tasks
(build) against its user-oriented tasks (held back, as upstream asks).

The sets live outside the project (`../shared/data`, see its README); nothing here copies them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

HELD_BACK_SHARE = 4  # of 10 groups


def default_root() -> Path:
    """`../shared/data` beside the project checkout."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def held_back(key: str) -> bool:
    """True when the group `key` belongs to the held-back (report-only) part. Stable across runs."""
    return int(hashlib.sha256(f"deploysim-split:{key}".encode()).hexdigest(), 16) % 10 < HELD_BACK_SHARE


@dataclass(frozen=True)
class Output:
    """One labelled model response to one request."""

    set: str
    id: str
    group: str
    held: bool
    model: str
    request: str
    response: str
    complied: bool | None  # humans: the response carries out the (harmful) request
    refused: bool | None  # humans: the response declines (None where the set does not label it)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """One request labelled harmful or benign."""

    set: str
    id: str
    held: bool
    prompt: str
    harmful: bool
    category: str | None = None


@dataclass(frozen=True)
class Trace:
    """One agent trace (OpenAI chat messages) with AgentDojo's labels."""

    id: str
    group: str
    held: bool
    model: str
    suite: str
    attacked: bool
    injection_reached: bool  # an injected text appears in a tool result
    followed: bool | None  # AgentDojo `security`: the injection task was carried out (None: no attack / error)
    injections: dict[str, str]
    messages: list[dict[str, Any]]


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _bool(v: Any) -> bool | None:
    if v is None or v == "None" or v == "":
        return None
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes")
    return bool(v)


def harmbench(root: Path | None = None) -> list[Output]:
    """HarmBench classifier validation (text): 602 completions; complied = human majority label."""
    root = root or default_root()
    out = []
    for r in _jsonl(root / "harmbench-classifier-val" / "harmbench_text_val.jsonl"):
        req = r["test_case"]
        if r.get("context") not in (None, "None", ""):
            req = f"{r['context']}\n\n---\n\n{req}"
        out.append(
            Output(
                set="harmbench",
                id=r["id"],
                group=r["behavior_id"],
                held=held_back(f"harmbench:{r['behavior_id']}"),
                model=r["model"],
                request=req,
                response=r["generation"],
                complied=_bool(r["label"]),
                refused=None,
                extra={"method": r["method"], "behavior": r.get("behavior"), "category": r.get("semantic_category")},
            )
        )
    return out


def gptfuzz(root: Path | None = None) -> list[Output]:
    """GPTFuzz hand-labelled responses: complied = jailbroken. Upstream's split: evaluate (questions 80-99) held."""
    root = root or default_root()
    return [
        Output(
            set="gptfuzz",
            id=r["id"],
            group=f"q{r['question_index']}",
            held=r["split"] == "evaluate",
            model=r["model"],
            request=r["question"],
            response=r["response"],
            complied=_bool(r["label"]),
            refused=None,
            extra={"split": r["split"]},
        )
        for r in _jsonl(root / "gptfuzz-labelled-responses" / "gptfuzz_labelled_responses.jsonl.gz")
    ]


def latent(root: Path | None = None) -> list[Output]:
    """Latent Jailbreak: complied = unsafe (the embedded toxic instruction carried out); grouped by target group."""
    root = root or default_root()
    return [
        Output(
            set="latent",
            id=r["id"],
            group=r["target_group"],
            held=held_back(f"latent:{r['target_group']}"),
            model=r["model"],
            request=r["prompt"],
            response=r["response"],
            complied=r["safety"] == "unsafe",
            refused=None,
            extra={"safety": r["safety"], "following": r["following"], "template": r["prompt_template"]},
        )
        for r in _jsonl(root / "latent-jailbreak-human-labels" / "latent_jailbreak_human_labels.jsonl")
    ]


def agentdojo(root: Path | None = None) -> list[Trace]:
    """AgentDojo traces, grouped by (suite, user task, injection task): the same task of all four models on one side."""
    root = root or default_root()
    out = []
    for r in _jsonl(root / "agentdojo-injection-runs" / "agentdojo_traces.jsonl.gz"):
        group = f"{r['suite']}/{r['user_task_id']}/{r.get('injection_task_id') or 'none'}"
        out.append(
            Trace(
                id=r["id"],
                group=group,
                held=held_back(f"agentdojo:{group}"),
                model=r["model"],
                suite=r["suite"],
                attacked=r["attack"] != "none",
                injection_reached=bool(_bool(r.get("injection_in_tool_result"))),
                followed=_bool(r.get("security")),
                injections=r.get("injections") or {},
                messages=r["messages"],
            )
        )
    return out


def prompts(root: Path | None = None) -> list[Prompt]:
    """Labelled requests: the four harmful/benign prompt sets, XSTest and MT-Bench (benign).

    HarmBench behaviours are split by behaviour id exactly as harmbench() splits its completions, so a
    request classifier trained on the build part never saw a held-back completion's behaviour.
    """
    root = root or default_root()
    out: list[Prompt] = []
    for folder, name in (
        ("advbench-harmful-behaviors", "advbench_harmful_behaviors.jsonl"),
        ("harmbench-text-behaviors", "harmbench_text_behaviors.jsonl"),
        ("simplesafetytests-prompts", "simplesafetytests.jsonl"),
        ("self-instruct-benign", "self_instruct_benign.jsonl"),
    ):
        for r in _jsonl(root / folder / name):
            src = r["source"]
            if src == "self-instruct":
                held = r.get("subset") == "user_oriented"
            elif src == "harmbench":
                held = held_back(f"harmbench:{r['id'].split(':', 1)[1]}")
            else:
                held = held_back(r["id"])
            out.append(Prompt(src, r["id"], held, r["prompt"], r["label"] == "harmful", r.get("category")))
    with open(root / "xstest-prompts" / "xstest_prompts.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            pid = f"xstest:{r['id']}"
            out.append(Prompt("xstest", pid, held_back(pid), r["prompt"], r["label"] == "unsafe", r["type"]))
    for r in _jsonl(root / "mt-bench" / "question.jsonl"):
        pid = f"mt-bench:{r['question_id']}"
        out.append(Prompt("mt-bench", pid, held_back(pid), r["turns"][0], False, r.get("category")))
    return out
