"""`deploysim replay` killed with SIGKILL mid-run and started again: no completed call repeated,
the same result as an uninterrupted run (real subprocess, real HTTP, real sqlite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from deploysim.replay.cache import ReplayCache
from deploysim_testkit.endpoint import PROFILES, start_in_thread

ROOT = Path(__file__).resolve().parents[1]
N = 240
PROFILE = PROFILES["steady"].model_copy(update={"name": "paced", "latency_ms": 40.0})
KEY_ENV = "DEPLOYSIM_TEST_RESUME_KEY"
SECRET = "sk-resume-test-NEVER-PRINTED-4411"
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


def write_logs(path: Path) -> None:
    with path.open("w") as f:
        for i in range(N):
            if i % 4 == 0:  # agent conversations: two model calls each
                rec = {
                    "id": f"a{i}",
                    "tools": [ORDER_TOOL],
                    "messages": [
                        {"role": "user", "content": f"Where is my order ORD-{10000 + i}?"},
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "p1",
                                    "type": "function",
                                    "function": {
                                        "name": "get_order",
                                        "arguments": json.dumps({"order_id": f"ORD-{10000 + i}"}),
                                    },
                                }
                            ],
                        },
                        {
                            "role": "tool",
                            "tool_call_id": "p1",
                            "name": "get_order",
                            "content": f'{{"status": "shipped {i}"}}',
                        },
                        {"role": "assistant", "content": "It shipped."},
                    ],
                }
            else:
                rec = {
                    "id": f"c{i}",
                    "messages": [
                        {"role": "user", "content": f"How do I care for a fern, case {i}?"},
                        {"role": "assistant", "content": "Logged."},
                    ],
                }
            f.write(json.dumps(rec) + "\n")


def cli(logs: Path, base_url: str, out: Path, cache: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orchestration.cli",
        "replay",
        str(logs),
        "--base-url",
        base_url,
        "--model",
        "paced",
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--concurrency",
        "8",
        "--api-key-env",
        KEY_ENV,
        "--quiet",
    ]


def env(home: Path) -> dict[str, str]:
    return {**os.environ, KEY_ENV: SECRET, "DEPLOYSIM_HOME": str(home), "PYTHONPATH": str(ROOT)}


def served(server: Any) -> dict[str, int]:
    return httpx.get(server.base_url.removesuffix("/v1") + "/stats?detail=1").json()["served"]


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def comparable(out: Path) -> list[tuple]:
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    return [
        (r["conversation_id"], r["status"], r["error"], json.dumps(r["turn"]), json.dumps(r["tool_results"]))
        for r in recs
    ]


def test_sigkill_and_resume_repeats_no_completed_call(tmp_path: Path) -> None:
    logs = tmp_path / "logs.jsonl"
    write_logs(logs)
    profiles = {"paced": PROFILE}

    # The uninterrupted reference run, on its own server.
    with start_in_thread(profiles=profiles, api_key=SECRET) as ref_server:
        ref = subprocess.run(
            cli(logs, ref_server.base_url, tmp_path / "ref.jsonl", tmp_path / "ref.sqlite"),
            env=env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ref.returncode == 0, ref.stderr
        ref_served = served(ref_server)
    assert lines(tmp_path / "ref.jsonl") == N
    assert set(ref_served.values()) == {1}

    with start_in_thread(profiles=profiles, api_key=SECRET) as server:
        out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
        proc = subprocess.Popen(
            cli(logs, server.base_url, out, cache),
            env=env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while lines(out) < N // 3 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        _, err1 = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        written = lines(out)
        assert N // 3 <= written < N

        # The calls completed before the kill are those in the cache.
        with ReplayCache(cache) as c:
            completed = {json.loads(r)["id"] for (r,) in c._conn.execute("SELECT response FROM responses")}
        served_at_kill = served(server)
        assert completed and completed <= set(served_at_kill)

        resumed = subprocess.run(
            cli(logs, server.base_url, out, cache), env=env(tmp_path), capture_output=True, text=True, timeout=120
        )
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming: {written} items already finished" in resumed.stderr
        final = served(server)

    assert all(final[i] == 1 for i in completed)  # no completed call was made again
    # Only calls in flight at the kill (answered, never received) can have been made twice.
    repeated = {i for i, n in final.items() if n > 1}
    assert len(repeated) <= 8 and not repeated & completed
    assert set(final) == set(ref_served)  # the same calls as the uninterrupted run
    assert comparable(out) == comparable(tmp_path / "ref.jsonl")  # same records, same order, each once
    summary = json.loads(resumed.stdout)
    assert summary["items"] == N and summary["ok"] == N
    for text in (err1, resumed.stderr, resumed.stdout, out.read_text()):
        assert SECRET not in text


def test_cli_replay_errors_and_dry_run(tmp_path: Path) -> None:
    logs = tmp_path / "logs.jsonl"
    write_logs(logs)
    with start_in_thread(profiles={"paced": PROFILE}) as server:
        base = [
            sys.executable,
            "-m",
            "orchestration.cli",
            "replay",
            str(logs),
            "--base-url",
            server.base_url,
            "--out",
            str(tmp_path / "o.jsonl"),
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--quiet",
        ]
        dry = subprocess.run(
            base + ["--model", "paced", "--dry-run", "--price-in", "1", "--price-out", "2"],
            env=env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert dry.returncode == 0, dry.stderr
        est = json.loads(dry.stdout)["dry_run"]
        assert est["items"] == N and est["calls"] == N + N // 4 and est["cost_usd"] > 0  # agents: 2 calls
        assert server.total_requests == 0
        missing = subprocess.run(
            base + ["--model", "paced", "--api-key-env", "DEPLOYSIM_TEST_UNSET_VAR"],
            env={k: v for k, v in env(tmp_path).items() if k != "DEPLOYSIM_TEST_UNSET_VAR"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert missing.returncode == 2 and "DEPLOYSIM_TEST_UNSET_VAR is not set" in missing.stdout
        unknown = subprocess.run(
            base + ["--model", "nope"], env=env(tmp_path), capture_output=True, text=True, timeout=60
        )
        assert unknown.returncode == 1
        assert json.loads(unknown.stdout)["top_errors"] == {"HTTP 404: The model 'nope' does not exist.": N}
