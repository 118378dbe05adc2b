"""Measured scale (issue 13, item 7): traffic steps and replay at growing sizes.

Traffic: for each size, demo logs are generated and the library steps ingest, redact (with NER, as
the pipeline does) and sample run one after the other through deploysim.pipeline, in a fresh
subprocess with DEPLOYSIM_HOME in a temporary directory, so the peak RSS is that size's.

Replay: for each size, that many conversations are drawn by the stratified sampler from twice as many
demo conversations (not redacted: redaction does not change the requests) and replayed against the
reference endpoint (its own process, fixed latency) with the candidate's concurrency at 1024 in
flight. The bound is n x latency / concurrency; agent conversations can take more than one request
(tool calls), so a floor is reported too: max(requests x latency / concurrency, the longest chain of
requests of one conversation x latency), which no replay can beat.

Shards: the sample is dealt into k parts as plan_replay deals it (sorted ids, round-robin) and each
part is replayed in its own process at the same time, with 1/k of the concurrency (as replay_shard
divides it): what the multiprocess executor does with the shard steps, less Dagster's own start-up
of a step (k = 1 is one such process). "replay s" is the replay itself in the slowest process (what
the bound and floor are compared with); "with start-up s" runs from the first process's start to
the last one's end (Python start-up and loading the conversations included).

Usage:
  .venv/bin/python benchmarks/scale.py [--traffic-sizes 10000,100000] [--replay-sizes 2000,20000]
      [--shards 1,2] [--latency-ms 2000] [--concurrency 1024] [--out benchmarks/results/scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from replay_throughput import start_endpoint  # the endpoint in its own process, warmed up

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("ingest", "redact", "sample")


def peak_rss_mb() -> float:
    """This process's peak RSS since it started its program: VmHWM (Linux). ru_maxrss is not used: a
    child started from a large parent keeps the parent's high-water mark across fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: KiB, maybe inherited


def timed(fn):
    cpu, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - cpu


# ---------------------------------------------------------------------------- workers (subprocesses)


def worker_traffic(n: int, sample_size: int, seed: int) -> dict:
    """Generate n demo conversations, then ingest, redact and sample them (DEPLOYSIM_HOME is a temp dir)."""
    from deploysim import lake, pipeline
    from deploysim.settings import load
    from deploysim_testkit import demo

    s = load()
    assert s.redact_ner, "the pipeline redacts with NER"
    paths, gen_s, _ = timed(lambda: demo.generate(lake.raw_dir(), n=n, seed=seed))
    out = {"n": n, "generate_s": gen_s, "log_mb": paths.logs.stat().st_size / 1e6, "steps": {}}
    runs = {
        "ingest": lambda: pipeline.run_ingest(str(paths.logs), settings=s),
        "redact": lambda: pipeline.run_redact(settings=s),
        "sample": lambda: pipeline.run_sample(sample_size, seed),
    }
    for step in STEPS:
        meta, wall, cpu = timed(runs[step])
        count = {"ingest": "accepted", "redact": "conversations", "sample": "sampled"}[step]
        out["steps"][step] = {"wall_s": wall, "cpu_s": cpu, "count": meta[count], "peak_rss_mb": peak_rss_mb()}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def prepare_replay(n: int, seed: int, path: Path) -> None:
    """Write n conversations drawn by the stratified sampler from 2n demo conversations (JSONL)."""
    from deploysim.logs.ingest import iter_ingest
    from deploysim.sampling.stratified import stratified_sample, stratum_of
    from deploysim.schemas import Conversation
    from deploysim_testkit import demo

    paths = demo.generate(path.parent / "demo", n=2 * n, seed=seed)
    convs = {c.conversation_id: c for c in iter_ingest([paths.logs]) if isinstance(c, Conversation)}
    units = [(c.conversation_id, stratum_of(c.topic, c.kind)) for c in convs.values()]
    with path.open("w", encoding="utf-8") as f:
        for r in stratified_sample(units, n, seed):
            f.write(convs[r.conversation_id].model_dump_json() + "\n")


def worker_replay(path: Path, base_url: str, concurrency: int) -> dict:
    """Replay the conversations in path against base_url, as run_replay does (options from the candidate)."""
    from deploysim.candidates import Candidate
    from deploysim.pipeline import replay_options
    from deploysim.replay.engine import replay
    from deploysim.schemas import Conversation

    convs = [Conversation.model_validate_json(line) for line in path.open(encoding="utf-8")]
    cand = Candidate(name="scale", base_url=base_url, model="bench", concurrency=concurrency)
    rss_loaded = peak_rss_mb()
    with tempfile.TemporaryDirectory() as d:
        recs, wall, cpu = timed(
            lambda: replay(convs, cand, Path(d) / "cache.sqlite", cand.max_steps, options=replay_options(cand))
        )
    return {
        "n": len(convs),
        "ok": sum(r.status == "ok" for r in recs),
        "requests": sum(r.http_calls for r in recs),
        "max_requests_per_conversation": max((r.http_calls for r in recs), default=0),
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------------------- orchestration


def run_worker(args: list[str], env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def endpoint_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def endpoint_peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def growth(prev: float, now: float, size_ratio: float) -> str:
    """How a quantity grew against the size: linear when within +-25% of proportional."""
    r = (now / prev) / size_ratio if prev > 0 else float("inf")
    word = "linear" if 0.75 <= r <= 1.25 else "superlinear" if r > 1.25 else "sublinear"
    return f"x{now / prev:.2f} ({word}, {r:.2f} of proportional)" if prev > 0 else "n/a"


def sizes(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def measure_traffic(ns: list[int], sample_size: int, seed: int) -> list[dict]:
    rows = []
    for n in ns:
        with tempfile.TemporaryDirectory(prefix="deploysim-scale-") as home:
            env = {"DEPLOYSIM_HOME": home, "DEPLOYSIM_LOGS": str(Path(home) / "raw" / "logs")}
            args = ["--worker", "traffic", "--n", str(n), "--sample-size", str(sample_size), "--seed", str(seed)]
            r = run_worker(args, env)
        total = sum(r["steps"][s]["wall_s"] for s in STEPS)
        r["total_s"] = total
        r["conversations_per_s"] = n / total
        for s in STEPS:
            r["steps"][s]["conversations_per_s"] = n / r["steps"][s]["wall_s"]
            r["steps"][s]["share"] = r["steps"][s]["wall_s"] / total
        rows.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return rows


def split_shards(path: Path, k: int) -> list[Path]:
    """The conversations of path dealt into k files as plan_replay deals a sample (sorted ids, round-robin)."""
    lines = sorted(path.read_text(encoding="utf-8").splitlines(), key=lambda ln: json.loads(ln)["conversation_id"])
    out = []
    for i in range(k):
        p = path.with_name(f"shard-{i}-of-{k}.jsonl")
        p.write_text("".join(ln + "\n" for ln in lines[i::k]), encoding="utf-8")
        out.append(p)
    return out


def run_shards(paths: list[Path], url: str, concurrency: int) -> dict:
    """Each shard in its own process at the same time (as the multiprocess executor runs the shard steps),
    each with its share of the concurrency (as replay_shard divides it); wall time until the last ends."""
    share = -(-concurrency // len(paths))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "replay", "--conversations", str(p)]
            + ["--base-url", url, "--concurrency", str(share)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in paths
    ]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"shard worker failed:\n{stderr[-3000:]}")
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    return {
        "n": sum(o["n"] for o in outs),
        "ok": sum(o["ok"] for o in outs),
        "requests": sum(o["requests"] for o in outs),
        "max_requests_per_conversation": max(o["max_requests_per_conversation"] for o in outs),
        "wall_s": wall,  # process start-up included, as for a step
        "shard_wall_s": [o["wall_s"] for o in outs],
        "cpu_s": sum(o["cpu_s"] for o in outs),
        "rss_loaded_mb": max(o["rss_loaded_mb"] for o in outs),
        "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),  # per process
    }


ENDPOINT = """
import socket, sys, uvicorn
from deploysim_testkit.endpoint import PROFILES, create_app
port, latency_ms = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", port))
s.listen(4096)
app = create_app({"bench": PROFILES["steady"].model_copy(update={"name": "bench", "latency_ms": latency_ms})})
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[s])
"""


def start_endpoints(latency_ms: float, processes: int) -> tuple[list[subprocess.Popen], str]:
    """The reference endpoint in `processes` processes sharing one port (SO_REUSEPORT: the kernel deals
    the connections), so that a single server's event loop is not what a large replay measures."""
    if processes == 1:
        proc, url = start_endpoint(latency_ms)
        return [proc], url
    from replay_throughput import free_port

    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, "-c", ENDPOINT, str(port), str(latency_ms)], cwd=ROOT, env=_env())
        for _ in range(processes)
    ]
    url = f"http://127.0.0.1:{port}/v1"
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
    for _ in range(400):
        try:  # warm-up: each process builds its request classifier on its first request
            for _ in range(4 * processes):
                httpx.post(url + "/chat/completions", json=body, timeout=30).raise_for_status()
            return procs, url
        except httpx.HTTPError:
            time.sleep(0.05)
    for p in procs:
        p.kill()
    raise RuntimeError("endpoint did not start")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def measure_replay(
    ns: list[int], latency_ms: float, concurrency: int, seed: int, shards: list[int], endpoint_processes: int = 1
) -> list[dict]:
    rows = []
    procs, url = start_endpoints(latency_ms, endpoint_processes)

    def endpoint_cpu() -> float:
        return sum(endpoint_cpu_s(p.pid) for p in procs)

    try:
        for n in ns:
            with tempfile.TemporaryDirectory(prefix="deploysim-scale-") as d:
                path = Path(d) / "sample.jsonl"
                prepare_replay(n, seed, path)
                for k in shards:
                    cpu = endpoint_cpu()
                    r = run_shards(split_shards(path, k), url, concurrency)
                    r["shards"] = k
                    r["endpoint_cpu_s"] = endpoint_cpu() - cpu  # the server's CPU for this size
                    r["endpoint_processes"] = endpoint_processes
                    lat = latency_ms / 1000
                    r["bound_s"] = n * lat / concurrency
                    # no replay can beat its requests over the slots, nor its longest chain of requests
                    r["floor_s"] = max(r["requests"] * lat / concurrency, r["max_requests_per_conversation"] * lat)
                    r["replay_s"] = max(r["shard_wall_s"])  # the replay itself, in the slowest shard process
                    r["of_bound"] = r["bound_s"] / r["replay_s"]
                    r["of_floor"] = r["floor_s"] / r["replay_s"]
                    r["of_floor_with_startup"] = r["floor_s"] / r["wall_s"]
                    r["requests_per_s"] = r["requests"] / r["replay_s"]
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        peaks = [endpoint_peak_mb(p.pid) for p in procs]
        endpoint_mb = max((m for m in peaks if m is not None), default=None)
        for p in procs:
            p.kill()
    for r in rows:
        r["endpoint_peak_rss_mb"] = endpoint_mb  # the server's peak over all sizes (per process)
    return rows


def report(traffic: list[dict], replay: list[dict], a: argparse.Namespace) -> None:
    if traffic:
        print(f"## Traffic (1 shard, NER on, sample of {a.sample_size})\n")
        print(
            "| conversations | log MB | ingest s | redact s | sample s | total s | conv/s | "
            "ingest conv/s | redact conv/s | sample conv/s | peak RSS MB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in traffic:
            st = r["steps"]
            print(
                f"| {r['n']:,} | {r['log_mb']:.0f} | {st['ingest']['wall_s']:.1f} | {st['redact']['wall_s']:.1f} | "
                f"{st['sample']['wall_s']:.1f} | {r['total_s']:.1f} | {r['conversations_per_s']:.0f} | "
                f"{st['ingest']['conversations_per_s']:.0f} | {st['redact']['conversations_per_s']:.0f} | "
                f"{st['sample']['conversations_per_s']:.0f} | {r['peak_rss_mb']:.0f} |"
            )
        print()
        for prev, r in zip([None, *traffic], traffic):
            share = ", ".join(f"{s} {r['steps'][s]['share']:.0%}" for s in STEPS)
            line = f"- {r['n']:,}: time goes to {share}"
            if prev:
                ratio = r["n"] / prev["n"]
                line += (
                    f"; vs {prev['n']:,} (x{ratio:.0f} size): time {growth(prev['total_s'], r['total_s'], ratio)}, "
                    f"peak RSS {growth(prev['peak_rss_mb'], r['peak_rss_mb'], ratio)}"
                )
            print(line)
        print()
    if replay:
        print(
            f"## Replay ({a.concurrency} in flight, endpoint latency {a.latency_ms:.0f} ms, endpoint in "
            f"{a.endpoint_processes} process(es) of its own)\n"
        )
        print(
            "| conversations | shards | ok | requests | replay s | with start-up s | bound s (n x lat / conc) | "
            "of bound | floor s | of floor | of floor with start-up | requests/s | client CPU s | endpoint CPU s | "
            "peak RSS MB per process |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in replay:
            print(
                f"| {r['n']:,} | {r['shards']} | {r['ok']:,} | {r['requests']:,} | {r['replay_s']:.1f} | {r['wall_s']:.1f} | "
                f"{r['bound_s']:.1f} | {r['of_bound']:.2f} | {r['floor_s']:.1f} | {r['of_floor']:.2f} | "
                f"{r['of_floor_with_startup']:.2f} | "
                f"{r['requests_per_s']:.0f} | {r['cpu_s']:.1f} | {r['endpoint_cpu_s']:.1f} | {r['peak_rss_mb']:.0f} |"
            )
        print()
        for prev, r in zip(replay, replay[1:]):
            if r["shards"] != prev["shards"] or r["n"] == prev["n"]:
                prev = next((q for q in replay if q["n"] < r["n"] and q["shards"] == r["shards"]), None)
                if prev is None:
                    continue
            ratio = r["n"] / prev["n"]
            print(
                f"- {r['shards']} shard(s), {r['n']:,} vs {prev['n']:,} (x{ratio:.0f} size): time {growth(prev['replay_s'], r['replay_s'], ratio)}, "
                f"peak RSS {growth(prev['peak_rss_mb'], r['peak_rss_mb'], ratio)}"
            )
        mb = replay[-1]["endpoint_peak_rss_mb"]
        print(f"- endpoint process peak RSS: {mb:.0f} MB" if mb else "- endpoint process peak RSS: unknown")
        longest = max(r["max_requests_per_conversation"] for r in replay)
        print(
            f"- floor = max(requests x latency / concurrency, longest chain x latency); the longest chain was "
            f"{longest} requests (agent conversations call tools)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traffic-sizes", default="10000,100000", help="comma-separated (1000000 accepted)")
    ap.add_argument("--replay-sizes", default="2000,20000")
    ap.add_argument("--shards", default="1,2", help="comma-separated shard counts of the replay")
    ap.add_argument("--endpoint-processes", type=int, default=1, help="reference endpoint processes (one port)")
    ap.add_argument("--sample-size", type=int, default=1000, help="the sample step's size (the settings' default)")
    ap.add_argument("--latency-ms", type=float, default=2000.0)
    ap.add_argument("--concurrency", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    ap.add_argument("--worker", choices=["traffic", "replay"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--conversations", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker == "traffic":
        print(json.dumps(worker_traffic(a.n, a.sample_size, a.seed)))
        return
    if a.worker == "replay":
        print(json.dumps(worker_replay(Path(a.conversations), a.base_url, a.concurrency)))
        return

    shards = sizes(a.shards)
    traffic = measure_traffic(sizes(a.traffic_sizes), a.sample_size, a.seed)
    replay = measure_replay(sizes(a.replay_sizes), a.latency_ms, a.concurrency, a.seed, shards, a.endpoint_processes)
    report(traffic, replay, a)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {k: getattr(a, k) for k in ("sample_size", "latency_ms", "concurrency", "seed")},
        "shards": shards,
        "traffic": traffic,
        "replay": replay,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
