"""Redaction benchmark: per-type precision/recall on gold character spans, throughput and
peak memory, side by side with Presidio (+ the same spaCy model) in the same run.

    .venv/bin/python benchmarks/redact_bench.py [--presidio-python /work/presidio-venv/bin/python]
        [--devset 2000] [--throughput-convs 200] [--real-convs 150]
        [--memory-sizes 10000,1000000] [--memory-dir /tmp/memrun] [--workers 2] [--skip-quality]

Presidio runs as a subprocess from its own venv (see benchmarks/redact_presidio_peer.py), so it
never enters the project's environment. Gold sets: ../shared/data/pii-small (presidio-research,
100 sentences) and the Faker dev set of deploysim_testkit/pii_devset.py (13 locales; its held-back
part has templates and locales the detectors were not tuned on). A gold span counts as
found when a predicted span of the same type (or one in SAME) overlaps it; a predicted span is
correct when it overlaps a gold span of its type. Over-redaction: the share of words outside
every gold span that a prediction covers. Memory: `deploysim redact` (streaming) in a fresh process on N
demo conversations, peak RSS reported by the process itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from deploysim_testkit import demo  # noqa: E402

PRESIDIO_TYPES = {
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP",
    "IBAN_CODE": "IBAN",
    "ADDRESS": "ADDRESS",
    "DATE_TIME": "DATE",
    "NRP": "NRP",
    "URL": "URL",
    "US_DRIVER_LICENSE": "DRIVER_LICENSE",
    "US_PASSPORT": "PASSPORT",
    "UK_NINO": "NATIONAL_ID",
    "IN_PAN": "NATIONAL_ID",
    "IN_AADHAAR": "NATIONAL_ID",
    "ES_NIF": "NATIONAL_ID",
    "ES_NIE": "NATIONAL_ID",
    "IT_FISCAL_CODE": "NATIONAL_ID",
    "PL_PESEL": "NATIONAL_ID",
    "FI_PERSONAL_IDENTITY_CODE": "NATIONAL_ID",
    "US_ITIN": "NATIONAL_ID",
}
TYPES = [
    "PERSON", "LOCATION", "ORGANIZATION", "ADDRESS", "POSTCODE", "EMAIL", "PHONE", "CARD", "SSN", "NATIONAL_ID",
    "PASSPORT", "DRIVER_LICENSE", "IP", "IBAN", "URL", "DATE", "DATE_OF_BIRTH", "AGE", "TITLE", "NRP",
]  # fmt: skip
# A gold span is found by a prediction of its own type or of a type that names the same thing.
SAME = {
    "ADDRESS": {"ADDRESS", "POSTCODE"},
    "POSTCODE": {"POSTCODE", "ADDRESS"},
    "DATE": {"DATE", "DATE_OF_BIRTH"},
    "DATE_OF_BIRTH": {"DATE_OF_BIRTH", "DATE"},
}
_IDS = {"SSN", "NATIONAL_ID", "PASSPORT", "DRIVER_LICENSE"}  # identity document numbers
SAME |= {t: _IDS for t in _IDS}


def pii_small_gold() -> list[dict]:
    rows = json.loads((DATA / "pii-small" / "generated_small.json").read_text())
    m = {
        "EMAIL_ADDRESS": "EMAIL",
        "PHONE_NUMBER": "PHONE",
        "CREDIT_CARD": "CARD",
        "US_SSN": "SSN",
        "IP_ADDRESS": "IP",
        "DATE_TIME": "DATE",
        "DOMAIN_NAME": "URL",
        "US_DRIVER_LICENSE": "DRIVER_LICENSE",
    }
    return [
        {
            "text": r["full_text"],
            "gold": [
                (m.get(s["entity_type"], s["entity_type"]), s["start_position"], s["end_position"]) for s in r["spans"]
            ],
        }
        for r in rows
    ]


def devset_gold(part: str, n: int = 2000) -> list[dict]:
    from deploysim_testkit.pii_devset import generate

    return [{"text": r["text"], "gold": [tuple(x) for x in r["spans"]]} for r in generate(n, part=part)]


_WORD_RE = re.compile(r"\w+")


def over_redaction(rows: list[dict], preds: list[list[tuple[str, int, int]]]) -> float:
    """Share of the words outside every gold span that a predicted span covers."""
    words = hit = 0
    for row, pred in zip(rows, preds):
        for m in _WORD_RE.finditer(row["text"]):
            if any(s < m.end() and m.start() < e for _, s, e in row["gold"]):
                continue
            words += 1
            hit += any(ps < m.end() and m.start() < pe for _, ps, pe in pred)
    return hit / words if words else float("nan")


def score(rows: list[dict], preds: list[list[tuple[str, int, int]]]) -> dict[str, tuple[float, float, int]]:
    """Per type: (precision, recall, gold count); under "ALL", recall over every gold span of any type."""
    tp_r, n_g, tp_p, n_p = defaultdict(int), defaultdict(int), defaultdict(int), defaultdict(int)
    for row, pred in zip(rows, preds):
        for t, s, e in row["gold"]:
            ok = SAME.get(t, {t})
            n_g[t] += 1
            tp_r[t] += any(pt in ok and ps < e and s < pe for pt, ps, pe in pred)
        for pt, ps, pe in pred:
            if pt not in TYPES:
                continue
            ok = SAME.get(pt, {pt})
            n_p[pt] += 1
            tp_p[pt] += any(t in ok and ps < e and s < pe for t, s, e in row["gold"])
    out = {
        t: (tp_p[t] / n_p[t] if n_p[t] else float("nan"), tp_r[t] / n_g[t] if n_g[t] else float("nan"), n_g[t])
        for t in TYPES + sorted(set(n_g) - set(TYPES))
        if n_g[t]
    }
    total = sum(n_g.values())
    out["ALL"] = (sum(tp_p.values()) / max(1, sum(n_p.values())), sum(tp_r.values()) / total, total)
    return out


# one text that reaches every detector (lazy imports, compiled patterns, validators) before the clock starts
WARM_UP = (
    "warm up: John Smith called 212-555-0199 from Berlin; my ID RGNLLR83P01M163M, DNI 67421688V, passport "
    "G73895098, address: Hauptstraße 5, 10115 Berlin, born 1990-01-02, aged 34, Mr. Li is Brazilian, x.com"
)


def ours(texts: list[str], ner: bool, cache: bool = True) -> tuple[list[list[tuple[str, int, int]]], float]:
    """deploysim's spans for texts through the redactor's own batched path, and the seconds it took
    (NER cache emptied first, so nothing is reused from an earlier call)."""
    from deploysim.privacy import ner as ner_mod
    from deploysim.privacy.policies import RedactConfig
    from deploysim.privacy.redaction import Redactor

    redactor = Redactor(RedactConfig(ner=ner))  # loads the model before the clock starts
    redactor.spans([WARM_UP])  # as the Presidio peer does
    ner_mod.clear_cache()
    old = ner_mod._cache.size
    ner_mod._cache.size = old if cache else 0
    try:
        t = time.perf_counter()
        out = [[(s.type, s.start, s.end) for s in spans] for spans in redactor.spans(texts)]
        return out, time.perf_counter() - t
    finally:
        ner_mod._cache.size = old


_bench_redactor = None


def _pool_init(ner: bool) -> None:
    global _bench_redactor
    from deploysim.privacy import ner as ner_mod
    from deploysim.privacy.policies import RedactConfig
    from deploysim.privacy.redaction import Redactor

    _bench_redactor = Redactor(RedactConfig(ner=ner))
    _bench_redactor.spans([WARM_UP])
    ner_mod.clear_cache()  # a forked worker must not inherit what the parent already analysed


def _pool_spans(texts: list[str]) -> list[list[tuple[str, int, int]]]:
    return [[(s.type, s.start, s.end) for s in spans] for spans in _bench_redactor.spans(texts)]


def ours_parallel(texts: list[str], ner: bool, workers: int = 2, chunk: int = 64) -> float:
    """Seconds for deploysim's spans over texts in `workers` processes (as `deploysim redact
    --workers`), workers started and warmed up before the clock starts."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_pool_init, initargs=(ner,)
    ) as pool:
        list(pool.map(_pool_spans, [["warm"]] * workers * 2))
        t = time.perf_counter()
        list(pool.map(_pool_spans, [texts[i : i + chunk] for i in range(0, len(texts), chunk)]))
        return time.perf_counter() - t


def presidio(py: str, texts: list[str]) -> tuple[list[list[tuple[str, int, int]]], float, float]:
    proc = subprocess.run(
        [py, str(ROOT / "benchmarks" / "redact_presidio_peer.py")],
        input=json.dumps({"texts": texts}),
        capture_output=True,
        text=True,
        check=True,
    )
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


def log_texts(path: Path, n_convs: int) -> list[str]:
    """Message contents and tool-call arguments of the first n conversations of a real log file,
    read with deploysim's own ingest (any supported format)."""
    from deploysim.logs.ingest import iter_ingest
    from deploysim.schemas import Conversation

    texts: list[str] = []
    n = 0
    for item in iter_ingest([path]):
        if not isinstance(item, Conversation):
            continue
        for m in item.messages:
            texts += [t for t in [m.content, *(c.arguments for c in m.tool_calls)] if t]
        n += 1
        if n >= n_convs:
            break
    return texts


def corpora(n_demo: int, n_real: int) -> dict[str, list[str]]:
    """Throughput corpora: demo conversations as generated (repeated system prompts and canned
    replies, as in production), the same with every repeated message removed (no help from
    de-duplication), and real public logs when ../shared/data is present."""
    demo_texts = conversation_texts(n_demo)
    out = {
        f"demo, {n_demo} conversations": demo_texts,
        f"demo, {n_demo} conversations, repeats removed": list(dict.fromkeys(demo_texts)),
    }
    hh = DATA / "hh-rlhf-harmless-base" / "harmless-base_test.jsonl.gz"
    if hh.exists() and n_real:
        out[f"hh-rlhf harmless-base, {n_real} dialogues"] = log_texts(hh, n_real)
    tau = DATA / "tau-bench-airline" / "gpt-4o-airline_trajectories_trials0-1.jsonl"
    if tau.exists() and n_real:
        out[f"tau-bench airline, {max(1, n_real // 10)} trajectories"] = log_texts(tau, max(1, n_real // 10))
    return out


def whole_command(py: str, texts: list[str]) -> tuple[float, float]:
    """Wall seconds of the whole command, start-up included, each in a fresh process: `deploysim
    redact` (rules + NER, one process) on the texts as one-message conversations, and the Presidio
    peer analysing the same texts."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        with open(src, "w") as fh:
            for i, t in enumerate(texts):
                fh.write(json.dumps({"id": f"t{i}", "messages": [{"role": "user", "content": t}]}) + "\n")
        env = dict(os.environ, DEPLOYSIM_HOME=tmp, DAGSTER_HOME=f"{tmp}/dagster")
        code = "import sys; from orchestration import cli; sys.exit(cli.main(sys.argv[1:]))"
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, "redact", str(src), str(out), "--quiet", "--ner", "--workers", "1"],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env=env,
        )
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        presidio(py, texts)
        return ours_s, time.perf_counter() - t


def memory_input(n: int, workdir: Path) -> Path:
    """n demo-like conversations in one JSONL file (10k generated, repeated with fresh ids), made once."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / "base.jsonl"
    if not base.exists():
        demo.generate(workdir / "gen", n=10_000, seed=5)
        base.write_bytes((workdir / "gen" / "logs" / "demo.jsonl").read_bytes())
    big = workdir / f"n{n}.jsonl"
    if not big.exists():
        lines = base.read_text().splitlines()
        tmp = big.with_suffix(".part")
        with open(tmp, "w") as fh:
            for i in range(n):
                rec = json.loads(lines[i % len(lines)])
                rec["id"] = f"{rec['id']}-{i // len(lines)}"
                fh.write(json.dumps(rec) + "\n")
        tmp.rename(big)
    return big


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and, separately, of each of its children: the largest, in MB."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    best = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return best


def memory_run(
    n: int, workdir: Path, ner: bool, command: str = "redact", workers: int = 1, timeout: float = 900
) -> tuple[float, float, float, str]:
    """Peak RSS (MB, the largest of the process and its workers), seconds, MB/s and a note for
    `deploysim ingest` or `deploysim redact` on n demo conversations, in a fresh process. A run
    longer than ``timeout`` is stopped; its RSS is then the peak sampled every second, and the note
    says how many conversations it had written."""
    big = memory_input(n, workdir)
    out = workdir / "out.jsonl"
    args = (
        ["ingest", str(big), "--quiet"]
        if command == "ingest"
        else ["redact", str(big), str(out), "--quiet", "--ner" if ner else "--no-ner", "--workers", str(workers)]
    )
    # Peak of this process: VmHWM (ru_maxrss would carry the benchmark's own peak across fork+exec);
    # workers: their ru_maxrss.
    code = (
        "import resource,sys,time; from orchestration import cli; t=time.perf_counter(); "
        f"rc=cli.main({args!r}); r=resource.getrusage; "
        "hwm=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]; "
        "print('RESULT', max(hwm, r(resource.RUSAGE_CHILDREN).ru_maxrss)/1024, time.perf_counter()-t, rc)"
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )  # its own process group: a stopped run takes its workers along
    sampled = 0.0
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        sampled = max(sampled, _rss_mb(proc.pid))
        time.sleep(1)
    if proc.poll() is None:
        secs = time.perf_counter() - t0
        partial = out.with_name(out.name + ".partial")
        done = sum(1 for _ in open(partial)) if partial.exists() else 0
        os.killpg(proc.pid, 9)
        proc.communicate()
        size = big.stat().st_size / 1e6 * done / n
        return sampled, secs, size / secs, f"stopped after {timeout:.0f} s with {done:,} of {n:,} written"
    stdout, stderr = proc.communicate()
    line = [x for x in stdout.splitlines() if x.startswith("RESULT")]
    if not line:
        raise RuntimeError(stdout + stderr)
    _, rss, secs, rc = line[0].split()
    return max(float(rss), sampled), float(secs), big.stat().st_size / 1e6 / float(secs), "complete"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presidio-python", default="/work/presidio-venv/bin/python")
    ap.add_argument("--devset", type=int, default=2000, help="examples generated for the Faker dev set (both parts)")
    ap.add_argument("--throughput-convs", type=int, default=200, help="demo conversations for the MB/s comparison")
    ap.add_argument(
        "--real-convs",
        type=int,
        default=150,
        help="hh-rlhf dialogues (and a tenth as many tau-bench trajectories) for the MB/s comparison; 0 skips them",
    )
    ap.add_argument("--memory-sizes", default="10000,1000000")
    ap.add_argument("--memory-ner", action="store_true", help="memory runs with NER on (slow)")
    ap.add_argument("--memory-dir", help="keep the generated memory inputs here and reuse them (default: a temp dir)")
    ap.add_argument("--memory-timeout", type=float, default=900, help="stop a memory run after this many seconds")
    ap.add_argument("--workers", type=int, default=1, help="`deploysim redact --workers` for the memory runs")
    ap.add_argument("--memory-commands", default="ingest,redact", help="which commands the memory runs measure")
    ap.add_argument("--skip-quality", action="store_true", help="no precision/recall tables")
    ap.add_argument("--skip-throughput", action="store_true", help="no MB/s table")
    a = ap.parse_args()

    sets: dict[str, list[dict]] = {}
    if not a.skip_quality:
        if (DATA / "pii-small").is_dir():
            sets["pii-small"] = pii_small_gold()
        sets["faker dev set, held-back part"] = devset_gold("held", a.devset)
        sets["faker dev set, build part (tuned on)"] = devset_gold("build", a.devset)
    for name, rows in sets.items():
        texts = [r["text"] for r in rows]
        ours_s, _ = ours(texts, ner=False)
        ours_n, _ = ours(texts, ner=True)
        pres, _, _ = presidio(a.presidio_python, texts)
        so, sn, sp = score(rows, ours_s), score(rows, ours_n), score(rows, pres)
        print(f"\n## {name}: {len(rows)} texts, precision / recall per type (gold count)")
        print("| type | gold | deploysim (rules) P / R | deploysim (rules+NER) P / R | Presidio P / R |")
        print("|---|---:|---|---|---|")
        for t in so:

            def f(s, t=t):
                return f"{s[t][0]:.2f} / {s[t][1]:.2f}" if t in s else "-"

            label = "**all types (overall recall)**" if t == "ALL" else t
            print(f"| {label} | {so[t][2]} | {f(so)} | {f(sn)} | {f(sp)} |")
        print(
            f"| over-redaction (non-personal words covered) | | {over_redaction(rows, ours_s):.1%} "
            f"| {over_redaction(rows, ours_n):.1%} | {over_redaction(rows, pres):.1%} |",
            flush=True,
        )

    print("\n## throughput, same run (model loaded and warmed up on both sides; Presidio single process)")
    print(
        "| corpus | texts | MB | deploysim rules MB/s | deploysim rules+NER MB/s | rules+NER, 2 workers MB/s "
        "| Presidio + spaCy sm MB/s | rules / Presidio | rules+NER / Presidio | rules+NER 2 workers / Presidio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, texts in ({} if a.skip_throughput else corpora(a.throughput_convs, a.real_convs)).items():
        mb = sum(len(x.encode()) for x in texts) / 1e6
        _, t_rules = ours(texts, ner=False)
        _, t_ner = ours(texts, ner=True)
        t_par = ours_parallel(texts, ner=True)
        _, t_pres, _ = presidio(a.presidio_python, texts)
        print(
            f"| {name} | {len(texts)} | {mb:.2f} | {mb / t_rules:.3f} | {mb / t_ner:.3f} | {mb / t_par:.3f} | {mb / t_pres:.4f} "
            f"| {t_pres / t_rules:.0f}x | {t_pres / t_ner:.1f}x | {t_pres / t_par:.1f}x |",
            flush=True,
        )

    if not a.skip_throughput:
        print("\n## whole command, start-up included (fresh process each; deploysim rules+NER single process)")
        print("| corpus | texts | MB | deploysim redact s | Presidio s | Presidio / deploysim |")
        print("|---|---:|---:|---:|---:|---:|")
        whole = {"pii-small": [r["text"] for r in pii_small_gold()]} if (DATA / "pii-small").is_dir() else {}
        whole |= {"faker dev set, held-back part": [r["text"] for r in devset_gold("held", a.devset)]}
        whole |= {f"demo, {a.throughput_convs} conversations": conversation_texts(a.throughput_convs)}
        for name, texts in whole.items():
            mb = sum(len(x.encode()) for x in texts) / 1e6
            ours_s, pres_s = whole_command(a.presidio_python, texts)
            print(
                f"| {name} | {len(texts)} | {mb:.2f} | {ours_s:.1f} | {pres_s:.1f} | {pres_s / ours_s:.1f}x |",
                flush=True,
            )

    print("\n## peak memory, streaming, fresh process per size (input: demo conversations repeated with fresh ids)")
    print("| command | conversations | NER | workers | input MB | peak RSS MB | seconds | MB/s | run |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    workdir = Path(a.memory_dir) if a.memory_dir else Path(tempfile.mkdtemp(prefix="redact-bench-"))
    for n in [int(x) for x in a.memory_sizes.split(",") if x]:
        size = memory_input(n, workdir).stat().st_size / 1e6
        for command in a.memory_commands.split(","):
            rss, secs, rate, note = memory_run(n, workdir, a.memory_ner, command, a.workers, a.memory_timeout)
            ner_col = ("on" if a.memory_ner else "off") if command == "redact" else "-"
            workers_col = a.workers if command == "redact" else 1
            print(
                f"| {command} | {n:,} | {ner_col} | {workers_col} | {size:.0f} | {rss:.0f} | {secs:.0f} | {rate:.2f} | {note} |",
                flush=True,
            )
    if not a.memory_dir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
