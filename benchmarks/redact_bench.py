"""Redaction benchmark: per-type precision/recall on gold character spans, throughput and
peak memory, side by side with Presidio (+ the same spaCy model) in the same run.

    .venv/bin/python benchmarks/redact_bench.py [--presidio-python /work/presidio-venv/bin/python]
        [--generated 400] [--throughput-texts 400] [--memory-sizes 10000,1000000]

Presidio runs as a subprocess from its own venv (see benchmarks/redact_presidio_peer.py), so it
never enters the project's environment. Gold sets: ../shared/data/pii-small (presidio-research,
100 sentences) and a set generated here from templates with known spans. A gold span counts as
found when a predicted span of the same type overlaps it; a predicted span is correct when it
overlaps a gold span of its type. Memory: `deploysim redact` (streaming) in a fresh process on N
demo conversations, peak RSS reported by the process itself.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from deploysim import demo  # noqa: E402
from deploysim.redact import find_pii  # noqa: E402

PRESIDIO_TYPES = {"PERSON": "PERSON", "LOCATION": "LOCATION", "ORGANIZATION": "ORGANIZATION", "EMAIL_ADDRESS": "EMAIL",
                  "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD", "US_SSN": "SSN", "IP_ADDRESS": "IP", "IBAN_CODE": "IBAN",
                  "ADDRESS": "ADDRESS"}
TYPES = ["PERSON", "LOCATION", "ORGANIZATION", "ADDRESS", "EMAIL", "PHONE", "CARD", "SSN", "IP", "IBAN"]

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Priya", "Tom", "Fatima", "Lars", "Yuki", "Emeka"]
LAST = ["Fernandez", "Okafor", "Schmidt", "Nakamura", "Johnson", "Kowalski", "Haddad", "Murphy", "Singh", "Rossi"]
CITIES = ["Chicago", "Berlin", "Lagos", "Toronto", "Madrid", "Sydney", "Boston", "Mumbai", "Seattle", "Dublin"]
ORGS = ["Goldman Sachs", "Microsoft", "the World Bank", "Deutsche Bahn", "Pfizer", "Toyota", "Amazon", "Unilever"]
STREETS = ["Maple Street", "Oak Avenue", "Sunset Boulevard", "Baker Street", "Elm Road", "Harbor Drive"]
TEMPLATES = [
    "Hi, this is {PERSON}, I moved to {LOCATION} last month and need to update my address to {ADDRESS}.",
    "Please send the invoice to {EMAIL} and call {PERSON} on {PHONE} if anything is missing.",
    "My card {CARD} was charged twice by {ORGANIZATION} in {LOCATION}.",
    "{PERSON} from {ORGANIZATION} asked me to confirm SSN {SSN} before Friday.",
    "The login came from {IP}, which is not my laptop; my email is {EMAIL}.",
    "Wire the refund to {IBAN}, account holder {PERSON}.",
    "I work at {ORGANIZATION} and my manager {PERSON} lives at {ADDRESS}.",
    "You can reach me at {PHONE} or visit our office in {LOCATION}.",
]


def _luhn_card(rng: random.Random) -> str:
    body = [4] + [rng.randint(0, 9) for _ in range(14)]
    total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d for i, d in enumerate(reversed(body)))
    digits = "".join(map(str, body)) + str((10 - total % 10) % 10)
    return " ".join(digits[i:i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randint(0, 9)) for _ in range(18))
    check = 98 - int(bban + "131400") % 97  # DE = 13 14
    s = f"DE{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def _value(t: str, rng: random.Random) -> str:
    return {
        "PERSON": lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "LOCATION": lambda: rng.choice(CITIES),
        "ORGANIZATION": lambda: rng.choice(ORGS),
        "ADDRESS": lambda: f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
        "EMAIL": lambda: f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}{rng.randint(1, 99)}@example.com",
        "PHONE": lambda: rng.choice([f"({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}",
                                     f"+44 20 7946 {rng.randint(0, 9999):04d}", f"+1-{rng.randint(201, 989)}-555-{rng.randint(0, 9999):04d}"]),
        "CARD": lambda: _luhn_card(rng),
        "SSN": lambda: f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "IP": lambda: f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "IBAN": lambda: _iban(rng),
    }[t]()


def generated_gold(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tpl = rng.choice(TEMPLATES)
        text, spans, pos = "", [], 0
        for part in tpl.replace("}", "{").split("{"):
            if part in TYPES:
                v = _value(part, rng)
                spans.append((part, len(text), len(text) + len(v)))
                text += v
            else:
                text += part
        rows.append({"text": text, "gold": spans})
    return rows


def pii_small_gold() -> list[dict]:
    rows = json.loads((DATA / "pii-small" / "generated_small.json").read_text())
    m = {"PERSON": "PERSON", "LOCATION": "LOCATION", "ORGANIZATION": "ORGANIZATION", "ADDRESS": "ADDRESS",
         "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD", "US_SSN": "SSN", "IP_ADDRESS": "IP"}
    return [{"text": r["full_text"], "gold": [(m[s["entity_type"]], s["start_position"], s["end_position"])
                                             for s in r["spans"] if s["entity_type"] in m]} for r in rows]


def score(rows: list[dict], preds: list[list[tuple[str, int, int]]]) -> dict[str, tuple[float, float, int]]:
    tp_r, n_g, tp_p, n_p = defaultdict(int), defaultdict(int), defaultdict(int), defaultdict(int)
    for row, pred in zip(rows, preds):
        for t, s, e in row["gold"]:
            n_g[t] += 1
            tp_r[t] += any(pt == t and ps < e and s < pe for pt, ps, pe in pred)
        for pt, ps, pe in pred:
            if pt not in TYPES:
                continue
            n_p[pt] += 1
            tp_p[pt] += any(t == pt and ps < e and s < pe for t, s, e in row["gold"])
    return {t: (tp_p[t] / n_p[t] if n_p[t] else float("nan"), tp_r[t] / n_g[t] if n_g[t] else float("nan"), n_g[t])
            for t in TYPES if n_g[t]}


def ours(texts: list[str], ner: bool) -> tuple[list[list[tuple[str, int, int]]], float]:
    from deploysim import ner as ner_mod
    from deploysim.redact import _resolve, _structured, Span

    if ner:
        ner_mod.load()
    t = time.perf_counter()
    if ner:  # batched, as the redactor runs it
        ents = ner_mod.entities(texts)
        out = [[(s.type, s.start, s.end) for s in _resolve(x, list(_structured(x)) + [Span(*e) for e in en])]
               for x, en in zip(texts, ents)]
    else:
        out = [[(s.type, s.start, s.end) for s in find_pii(x)] for x in texts]
    return out, time.perf_counter() - t


def presidio(py: str, texts: list[str]) -> tuple[list[list[tuple[str, int, int]]], float, float]:
    proc = subprocess.run([py, str(ROOT / "benchmarks" / "redact_presidio_peer.py")], input=json.dumps({"texts": texts}),
                          capture_output=True, text=True, check=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    spans = [[(PRESIDIO_TYPES.get(t, t), s, e) for t, s, e in row] for row in res["spans"]]
    return spans, res["seconds"], res["peak_rss_mb"]


def conversation_texts(n_convs: int) -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        paths = demo.generate(Path(d), n=n_convs, seed=11)
        texts = []
        for line in paths.logs.read_text().splitlines():
            for m in json.loads(line)["messages"]:
                if m.get("content"):
                    texts.append(m["content"])
        return texts


def memory_run(n: int, workdir: Path, ner: bool) -> tuple[float, float, float]:
    """Peak RSS (MB), seconds and MB/s of `deploysim redact` on n demo conversations."""
    base = workdir / "base.jsonl"
    if not base.exists():
        demo.generate(workdir / "gen", n=10_000, seed=5)
        src = next((workdir / "gen").rglob("*.jsonl"))
        base.write_bytes(src.read_bytes())
    big = workdir / f"n{n}.jsonl"
    if not big.exists():
        lines = base.read_text().splitlines()
        with open(big, "w") as fh:
            for i in range(n):
                rec = json.loads(lines[i % len(lines)])
                rec["id"] = f"{rec['id']}-{i // len(lines)}"
                fh.write(json.dumps(rec) + "\n")
    code = ("import resource,sys,time; from deploysim import cli; t=time.perf_counter(); "
            f"rc=cli.main(['redact', {str(big)!r}, {str(workdir / 'out.jsonl')!r}, '--quiet', {'--ner' if ner else '--no-ner'!r}]); "
            "print('RESULT', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, time.perf_counter()-t, rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    if not line:
        raise RuntimeError(proc.stdout + proc.stderr)
    _, rss, secs, rc = line[0].split()
    return float(rss), float(secs), big.stat().st_size / 1e6 / float(secs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presidio-python", default="/work/presidio-venv/bin/python")
    ap.add_argument("--generated", type=int, default=400)
    ap.add_argument("--throughput-convs", type=int, default=200, help="demo conversations for the MB/s comparison")
    ap.add_argument("--memory-sizes", default="10000,100000")
    ap.add_argument("--memory-ner", action="store_true", help="memory runs with NER on (slow)")
    a = ap.parse_args()

    sets = {"generated": generated_gold(a.generated)}
    if (DATA / "pii-small").is_dir():
        sets["pii-small"] = pii_small_gold()
    for name, rows in sets.items():
        texts = [r["text"] for r in rows]
        ours_s, _ = ours(texts, ner=False)
        ours_n, _ = ours(texts, ner=True)
        pres, _, _ = presidio(a.presidio_python, texts)
        so, sn, sp = score(rows, ours_s), score(rows, ours_n), score(rows, pres)
        print(f"\n## {name}: {len(rows)} texts, precision / recall per type (gold count)")
        print(f"| type | gold | deploysim (rules) P / R | deploysim (rules+NER) P / R | Presidio P / R |")
        print("|---|---:|---|---|---|")
        for t in so:
            f = lambda s: f"{s[t][0]:.2f} / {s[t][1]:.2f}" if t in s else "-"
            print(f"| {t} | {so[t][2]} | {f(so)} | {f(sn)} | {f(sp)} |")

    texts = conversation_texts(a.throughput_convs)
    mb = sum(len(x.encode()) for x in texts) / 1e6
    _, t_rules = ours(texts, ner=False)
    _, t_ner = ours(texts, ner=True)
    _, t_pres, _ = presidio(a.presidio_python, texts)
    print(f"\n## throughput on {len(texts)} messages of {a.throughput_convs} demo conversations ({mb:.2f} MB), same run")
    print("| system | MB/s | ratio to Presidio |")
    print("|---|---:|---:|")
    for name, secs in (("deploysim rules", t_rules), ("deploysim rules+NER", t_ner), ("Presidio + spaCy sm", t_pres)):
        print(f"| {name} | {mb / secs:.3f} | {t_pres / secs:.1f}x |")

    print("\n## peak memory of `deploysim redact` (streaming), fresh process per size")
    print("| conversations | NER | input MB | peak RSS MB | seconds | MB/s |")
    print("|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for n in [int(x) for x in a.memory_sizes.split(",") if x]:
            rss, secs, rate = memory_run(n, Path(d), a.memory_ner)
            size = (Path(d) / f"n{n}.jsonl").stat().st_size / 1e6
            print(f"| {n:,} | {'on' if a.memory_ner else 'off'} | {size:.0f} | {rss:.0f} | {secs:.0f} | {rate:.2f} |", flush=True)
            (Path(d) / f"n{n}.jsonl").unlink()


if __name__ == "__main__":
    main()
