"""Replay throughput against the reference endpoint, and the same replay done by Inspect AI.

For each concurrency level the same N single-turn conversations are replayed against the
reference endpoint (its own process, fixed latency) by deploysim (fresh cache) and by
Inspect AI (`generate()` over the same prompts, same endpoint, max_connections = max_samples
= the level). Throughput is reported as a fraction of the bound concurrency / latency.
Client CPU per request is measured against a zero-latency endpoint. Each side runs in its
own subprocess; the Inspect side uses a separate interpreter (its own venv).

Usage:
  .venv/bin/python benchmarks/replay_throughput.py [--n 10000] [--levels 16,64,256]
      [--latency-ms 200] [--cpu-n 5000] [--inspect-python /work/bench-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def prompts(n: int) -> list[str]:
    topics = ["sourdough", "tax filing", "bicycle repair", "houseplants", "chess openings", "budgeting", "watercolour"]
    return [f"Question {i}: what should a beginner know about {topics[i % len(topics)]}?" for i in range(n)]


# ---------------------------------------------------------------------------- workers (subprocesses)


def worker_deploysim(n: int, conc: int, base_url: str, model: str) -> dict:
    from deploysim.candidates import Candidate
    from deploysim.replay.engine import replay
    from deploysim.schemas import Conversation, Message

    convs = [
        Conversation(conversation_id=f"b{i}", messages=[Message(role="user", content=p)])
        for i, p in enumerate(prompts(n))
    ]
    cand = Candidate(name="bench", base_url=base_url, model=model, concurrency=conc, timeout_s=60, max_retries=3)
    with tempfile.TemporaryDirectory() as d:
        cpu, t = time.process_time(), time.perf_counter()
        recs = replay(convs, cand, Path(d) / "cache.sqlite")
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    ok = sum(r.status == "ok" for r in recs)
    return {"n": n, "ok": ok, "wall_s": wall, "cpu_s": cpu, "requests": sum(r.http_calls for r in recs)}


def worker_inspect(n: int, conc: int, base_url: str, model: str) -> dict:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.solver import generate

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-unused")
    task = Task(dataset=[Sample(input=p, id=i) for i, p in enumerate(prompts(n))], solver=generate())
    with tempfile.TemporaryDirectory() as d:
        cpu, t = time.process_time(), time.perf_counter()
        [log] = eval(
            task,
            model=f"openai/{model}",
            model_base_url=base_url,
            max_connections=conc,
            max_samples=conc,
            log_dir=d,
            display="none",
            temperature=0.0,
            max_tokens=512,
            fail_on_error=False,
            model_args={"responses_api": False},
        )  # Chat Completions, like deploysim
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        ok = sum(1 for s in (log.samples or []) if not s.error and s.output and s.output.completion)
    return {"n": n, "ok": ok, "wall_s": wall, "cpu_s": cpu, "requests": n, "status": log.status}


# ---------------------------------------------------------------------------- orchestration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_endpoint(latency_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = (
        "from deploysim_testkit.endpoint import PROFILES, serve\n"
        f"p = {{'bench': PROFILES['steady'].model_copy(update={{'name': 'bench', 'latency_ms': {latency_ms}}})}}\n"
        f"serve(port={port}, profiles=p)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
            continue
        url = f"http://127.0.0.1:{port}/v1"
        # warm-up: the endpoint builds its request classifier on the first request (about 0.2 s)
        body = {"model": "bench", "messages": [{"role": "user", "content": prompts(1)[0]}]}
        httpx.post(url + "/chat/completions", json=body, timeout=30).raise_for_status()
        return proc, url
    proc.kill()
    raise RuntimeError("endpoint did not start")


def run_worker(python: str, side: str, n: int, conc: int, base_url: str) -> dict:
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--n",
        str(n),
        "--levels",
        str(conc),
        "--base-url",
        base_url,
    ]
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    if out.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--levels", default="16,64,256")
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--cpu-n", type=int, default=5000)
    ap.add_argument("--inspect-python", default="/work/bench-venv/bin/python")
    ap.add_argument("--worker", choices=["deploysim", "inspect"])
    ap.add_argument("--base-url")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]

    if a.worker:
        fn = worker_deploysim if a.worker == "deploysim" else worker_inspect
        print(json.dumps(fn(a.n, levels[0], a.base_url, "bench")))
        return

    have_inspect = Path(a.inspect_python).exists()
    rows = []
    proc, url = start_endpoint(a.latency_ms)
    try:
        for c in levels:
            bound = c / (a.latency_ms / 1000)
            d = run_worker(sys.executable, "deploysim", a.n, c, url)
            i = run_worker(a.inspect_python, "inspect", a.n, c, url) if have_inspect else None
            row = {
                "concurrency": c,
                "bound_rps": bound,
                "deploysim_rps": d["ok"] / d["wall_s"],
                "deploysim_ok": d["ok"],
            }
            if i:
                row |= {"inspect_rps": i["ok"] / i["wall_s"], "inspect_ok": i["ok"]}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        proc.kill()
    proc, url = start_endpoint(0.0)
    try:
        d0 = run_worker(sys.executable, "deploysim", a.cpu_n, 16, url)
        i0 = run_worker(a.inspect_python, "inspect", a.cpu_n, 16, url) if have_inspect else None
    finally:
        proc.kill()

    print(
        f"\nreplay throughput: {a.n} conversations, endpoint latency {a.latency_ms:.0f} ms (bound = concurrency / latency)\n"
    )
    print(
        f"{'concurrency':>11} {'bound rps':>10} {'deploysim rps':>14} {'of bound':>9} {'inspect rps':>12} {'of bound':>9} {'deploysim/inspect':>18}"
    )
    for r in rows:
        ins = r.get("inspect_rps")
        print(
            f"{r['concurrency']:>11} {r['bound_rps']:>10.0f} {r['deploysim_rps']:>14.1f} {r['deploysim_rps'] / r['bound_rps']:>9.1%} "
            + (
                f"{ins:>12.1f} {ins / r['bound_rps']:>9.1%} {r['deploysim_rps'] / ins:>17.2f}x"
                if ins
                else f"{'-':>12} {'-':>9} {'-':>18}"
            )
        )
    print(f"\nclient CPU per request, zero-latency endpoint, {a.cpu_n} requests at concurrency 16:")
    print(f"  deploysim {d0['cpu_s'] / d0['requests'] * 1000:.3f} ms ({d0['ok']}/{d0['n']} ok)")
    if i0:
        print(f"  inspect   {i0['cpu_s'] / i0['requests'] * 1000:.3f} ms ({i0['ok']}/{i0['n']} ok)")


if __name__ == "__main__":
    main()
