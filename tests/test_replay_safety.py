"""Issue 15, the replay's share of "a gate that cannot lie": the cache never answers for another endpoint
or key (finding 2), failure is bounded and stops a run (5), every failure has a class (6), nothing
private leaves in clear (13). Real HTTP on 127.0.0.1: the reference endpoint, and tiny socket servers
that never answer, answer a web page, close, or echo the key."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from deploysim.candidates import Candidate
from deploysim.replay.accounting import summarize, summary_lines
from deploysim.replay.cache import ReplayCache
from deploysim.replay.client import ChatClient
from deploysim.replay.engine import ReplayOptions, replay
from deploysim.replay.failures import failure_class, failure_classes
from deploysim.schemas import Conversation, Message, ToolCall
from deploysim_testkit.endpoint import PROFILES, start_in_thread

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-safety-test-NEVER-SHOWN-5521ab"
WRONG = "sk-wrong-safety-key-ALSO-HIDDEN-9042"
KEY_ENV = "DEPLOYSIM_TEST_SAFETY_KEY"
EMAIL = "maria.lopez@example.com"
SIMULATOR = PROFILES["steady"].model_copy(update={"name": "tool-sim", "kind": "tool_simulator"})
PROFILES_UNDER_TEST = {"steady": PROFILES["steady"], "tool-sim": SIMULATOR}
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with start_in_thread(profiles=PROFILES_UNDER_TEST, api_key=SECRET) as s:
        yield s


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


def cand(base_url: str, **kw: Any) -> Candidate:
    return Candidate(
        **{
            "name": "c",
            "base_url": base_url,
            "model": "steady",
            "api_key_env": KEY_ENV,
            "concurrency": 4,
            "max_retries": 2,
            **kw,
        }
    )


def chats(n: int, prefix: str = "q") -> list[Conversation]:
    return [
        Conversation(
            conversation_id=f"{prefix}{i}",
            messages=[
                Message(role="user", content=f"How long should I steep green tea, case {i}?"),
                Message(role="assistant", content="Logged answer."),
            ],
        )
        for i in range(n)
    ]


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # closed again: nothing listens there


def served(server: Any) -> int:
    return httpx.get(server.base_url.removesuffix("/v1") + "/stats").json()["total"]


class TinyServer:
    """A raw HTTP/1.1 server on 127.0.0.1 with one behaviour per instance:
    silent (reads the request, never answers), html (200 text/html), html502, close (closes without
    answering), capture (answers a completion, keeps every request body), echo400 (a JSON 400 whose
    message repeats the Authorization header and an email address)."""

    def __init__(self, mode: str) -> None:
        self.mode, self.bodies, self.stop = mode, [], threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def __enter__(self) -> TinyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # the accept timeout: look at the stop flag again
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = int(
                    next(
                        (
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        b"0",
                    )
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.bodies.append(body)
                if self.mode == "silent":  # never answer: read until the client gives up and closes
                    while conn.recv(65536):
                        continue
                    return
                if self.mode == "close":
                    return
                conn.sendall(self._reply(head, body))

    def _reply(self, head: bytes, body: bytes) -> bytes:
        def http(status: str, ctype: str, payload: bytes) -> bytes:
            return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
                status.encode(),
                ctype.encode(),
                len(payload),
                payload,
            )

        if self.mode == "html":
            return http("200 OK", "text/html; charset=utf-8", b"<!doctype html><html><body>Sign in</body></html>")
        if self.mode == "html502":
            return http("502 Bad Gateway", "text/html", b"<html><body>502 Bad Gateway</body></html>")
        if self.mode == "echo400":
            auth = next(
                (
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"authorization")
                ),
                "",
            )
            msg = f"account {EMAIL} has no access with {auth}"
            return http("400 Bad Request", "application/json", json.dumps({"error": {"message": msg}}).encode())
        answer = {
            "id": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Three minutes."}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        }
        return http("200 OK", "application/json", json.dumps(answer).encode())


# ---------------------------------------------------------------------------- finding 2: the cache key


def test_a_candidate_at_a_dead_url_gets_no_answer_from_another_candidates_cache(server: Any, tmp_path: Path) -> None:
    convs, cache = chats(6), tmp_path / "replay.sqlite"
    live = replay(convs, cand(server.base_url), cache)
    assert all(r.status == "ok" for r in live)
    again = summarize(replay(convs, cand(server.base_url), cache))
    assert again["cached_answers"] == again["answers"] == 6 and again["http_calls"] == 0

    ghost = replay(convs, cand(dead_url(), name="ghost"), cache)  # same model id, nothing listens
    assert all(r.status == "error" and r.cached_calls == 0 for r in ghost)
    assert {failure_class(r.error) for r in ghost} <= {"refused", "endpoint_unusable"}
    s = summarize(ghost)
    assert s["ok"] == 0 and s["cached_answers"] == 0 and s["answers"] == 0
    assert summary_lines(s)[0].startswith("0 of 0 answers from the cache")


def test_another_key_is_another_cache_entry_and_no_key_is_stored(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    convs, cache = chats(4, "k"), tmp_path / "replay.sqlite"
    assert all(r.status == "ok" for r in replay(convs, cand(server.base_url), cache))
    monkeypatch.setenv(KEY_ENV, WRONG)
    wrong = replay(convs, cand(server.base_url), cache)
    assert all(r.status == "error" and r.cached_calls == 0 for r in wrong)
    assert {failure_class(r.error) for r in wrong} <= {"auth", "endpoint_unusable"}
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("replay.sqlite"))
    assert SECRET.encode() not in stored and WRONG.encode() not in stored


def test_the_key_tells_endpoints_models_params_keys_and_the_simulator_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs, base = [{"role": "user", "content": "hi"}], "http://127.0.0.1:8000/v1"
    with ReplayCache(tmp_path / "a.sqlite") as a, ReplayCache(tmp_path / "b.sqlite") as b:
        key = ChatClient(cand(base), a).cache_key(msgs, [])
        assert key == ChatClient(cand(base + "/"), a).cache_key(msgs, [])
        others = {
            ChatClient(cand("http://127.0.0.1:8001/v1"), a).cache_key(msgs, []),
            ChatClient(cand(base, model="other"), a).cache_key(msgs, []),
            ChatClient(cand(base, temperature=0.7), a).cache_key(msgs, []),
            ChatClient(cand(base, max_tokens=9), a).cache_key(msgs, []),
            ChatClient(cand(base), a).cache_key(msgs, [], {"seed": 1}),
            # the tool simulator: its own client, told apart by its model and its base URL
            ChatClient(cand(base, name="sim", model="tool-sim"), a).cache_key(msgs, []),
            ChatClient(cand("http://127.0.0.1:9000/v1", name="sim", model="steady"), a).cache_key(msgs, []),
        }
        assert key not in others and len(others) == 7
        monkeypatch.setenv(KEY_ENV, WRONG)
        assert ChatClient(cand(base), a).cache_key(msgs, []) != key
        # keyed: the same credential hashes differently in another cache file, and not as a plain hash
        assert a.credential_tag(SECRET) != b.credential_tag(SECRET)
        import hashlib

        assert a.credential_tag(SECRET) != hashlib.sha256(SECRET.encode()).hexdigest()
    with ReplayCache(tmp_path / "a.sqlite") as a:
        monkeypatch.setenv(KEY_ENV, SECRET)
        assert ChatClient(cand(base), a).cache_key(msgs, []) == key  # the salt is kept in the file


def test_read_cache_false_reads_nothing_from_the_cache(server: Any, tmp_path: Path) -> None:
    convs, cache = chats(3, "f"), tmp_path / "replay.sqlite"
    replay(convs, cand(server.base_url), cache)
    before = served(server)
    fresh = replay(convs, cand(server.base_url), cache, options=ReplayOptions(read_cache=False))
    assert served(server) - before == 3 and summarize(fresh)["cached_answers"] == 0


# ---------------------------------------------------------------------------- finding 5: bounded failure


def test_a_host_that_does_not_resolve_is_not_retried_and_stops_the_run(tmp_path: Path) -> None:
    recs = replay(chats(20), cand("http://no-such-host.invalid/v1", max_retries=5), tmp_path / "c.sqlite")
    first = [r for r in recs if r.attempts]
    assert first and all(r.attempts == 1 and r.error == "cannot resolve host no-such-host.invalid" for r in first)
    rest = [r for r in recs if not r.attempts]
    assert rest and all(
        r.error == "not attempted: endpoint unusable (cannot resolve host no-such-host.invalid)" for r in rest
    )


def test_401_stops_the_whole_replay_not_each_item(server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, WRONG)
    before = served(server)
    recs = replay(chats(40, "u"), cand(server.base_url, concurrency=2), tmp_path / "c.sqlite")
    assert served(server) - before <= 2  # at most the requests already in flight
    assert all(r.status == "error" for r in recs)
    not_attempted = [r for r in recs if r.error == "not attempted: endpoint unusable (HTTP 401 unauthorized)"]
    assert len(not_attempted) >= 38
    classes = {f["class"]: f["count"] for f in failure_classes(recs)}
    assert classes["endpoint_unusable"] == len(not_attempted) and classes.get("auth", 0) >= 1
    assert WRONG not in json.dumps([r.model_dump() for r in recs])


def test_connections_refused_for_the_limit_stop_the_run(tmp_path: Path) -> None:
    opts = ReplayOptions(refused_limit_s=0.5)
    recs = replay(chats(200), cand(dead_url(), concurrency=2, max_retries=3), tmp_path / "c.sqlite", options=opts)
    assert all(r.status == "error" for r in recs)
    assert any(r.error == "not attempted: endpoint unusable (connection refused for 0.5 s)" for r in recs)
    assert {failure_class(r.error) for r in recs} <= {"refused", "endpoint_unusable"}


def test_a_server_that_never_answers_costs_timeout_times_attempts(tmp_path: Path) -> None:
    with TinyServer("silent") as tiny:
        t0 = time.monotonic()
        recs = replay(chats(8), cand(tiny.base_url, timeout_s=0.5, max_retries=1), tmp_path / "c.sqlite")
        assert time.monotonic() - t0 < 60  # finishes at all (30 s x 6 attempts per item before)
    assert all(r.status == "error" and r.error == "timeout after 2 attempts" for r in recs)
    assert failure_classes(recs) == [
        {"class": "timeout", "label": "request timed out", "count": 8, "example": "timeout after 2 attempts"}
    ]


def test_silence_for_the_limit_stops_the_run(tmp_path: Path) -> None:
    with TinyServer("silent") as tiny:
        opts = ReplayOptions(silent_limit_s=0.5)
        recs = replay(
            chats(60),
            cand(tiny.base_url, timeout_s=0.3, max_retries=5, concurrency=2),
            tmp_path / "c.sqlite",
            options=opts,
        )
    assert all(r.status == "error" for r in recs)
    assert any(r.error == "not attempted: endpoint unusable (no response for 0.5 s)" for r in recs)


def test_the_deadline_bounds_a_run_against_a_server_that_never_answers(tmp_path: Path) -> None:
    with TinyServer("silent") as tiny:
        t0 = time.monotonic()
        recs = replay(
            chats(12),
            cand(tiny.base_url, timeout_s=30, max_retries=5, concurrency=2),
            tmp_path / "c.sqlite",
            options=ReplayOptions(deadline_s=1.0),
        )
        assert time.monotonic() - t0 < 60
    assert all(r.status == "error" and r.error.startswith("deadline exceeded") for r in recs)
    assert [f["class"] for f in summarize(recs)["failure_classes"]] == ["deadline"]


# ---------------------------------------------------------------------------- finding 6: failure classes


def test_a_web_page_instead_of_json_is_named_and_not_retried(tmp_path: Path) -> None:
    with TinyServer("html") as tiny:
        recs = replay(chats(10), cand(tiny.base_url, max_retries=5, concurrency=1), tmp_path / "c.sqlite")
        assert len(tiny.bodies) == 3  # one attempt per item, then the endpoint is unusable
    assert [r.error for r in recs[:3]] == ["non-JSON response (text/html)"] * 3
    assert all(r.error == "not attempted: endpoint unusable (non-JSON response (text/html))" for r in recs[3:])
    assert [(f["class"], f["count"]) for f in failure_classes(recs)] == [("endpoint_unusable", 7), ("non_json", 3)]


@pytest.mark.parametrize(
    "mode, cls, reason",
    [
        ("html502", "server_error", "HTTP 502 after 2 attempts"),
        ("close", "connection", "connection error after 2 attempts"),
    ],
)
def test_each_failure_has_its_class(tmp_path: Path, mode: str, cls: str, reason: str) -> None:
    with TinyServer(mode) as tiny:
        recs = replay(chats(3), cand(tiny.base_url, max_retries=1), tmp_path / "c.sqlite")
    assert [r.error for r in recs] == [reason] * 3
    [entry] = summarize(recs)["failure_classes"]
    assert entry["class"] == cls and entry["count"] == 3 and entry["example"] == reason


def test_error_reasons_and_examples_hold_no_key_and_no_personal_data(tmp_path: Path) -> None:
    with TinyServer("echo400") as tiny:
        recs = replay(chats(3), cand(tiny.base_url), tmp_path / "c.sqlite")
    assert all(r.status == "error" and r.error.startswith("HTTP 400: account <EMAIL_1>") for r in recs)
    [entry] = failure_classes(recs)
    assert entry["class"] == "rejected" and entry["count"] == 3
    text = json.dumps([r.model_dump() for r in recs]) + json.dumps(entry) + "\n".join(summary_lines(summarize(recs)))
    assert SECRET not in text and EMAIL not in text


# ---------------------------------------------------------------------------- finding 13: privacy


def test_simulated_tool_results_are_redacted_like_model_output(server: Any, tmp_path: Path) -> None:
    from deploysim.pipeline import redact_outputs

    # Production called get_order(ORD-99999); the candidate asks for ORD-12345, so the simulator answers,
    # in the format of the recorded result: with the customer's email in it.
    conv = Conversation(
        conversation_id="t1",
        tools=[ORDER_TOOL],
        messages=[
            Message(role="user", content="Where is my order ORD-12345?"),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="p1", name="get_order", arguments='{"order_id": "ORD-99999"}')],
            ),
            Message(
                role="tool",
                tool_call_id="p1",
                name="get_order",
                content=json.dumps({"status": "shipped", "email": EMAIL}),
            ),
            Message(role="assistant", content="It shipped."),
        ],
    )
    opts = ReplayOptions(tool_simulator=cand(server.base_url, name="sim", model="tool-sim"))
    [rec] = replay([conv], cand(server.base_url), tmp_path / "c.sqlite", options=opts)
    [tr] = rec.tool_results
    assert rec.status == "ok" and tr.source == "simulated" and EMAIL in tr.content  # the simulator's raw output
    redact_outputs([rec], {"t1": conv})
    assert EMAIL not in rec.model_dump_json()
    assert "<EMAIL_1>" in tr.content and [m.content for m in rec.turn if m.role == "tool"] == [tr.content]


def test_the_pipeline_cache_is_owner_only_in_the_raw_zone_and_a_ghost_candidate_fails(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploysim import lake, pipeline
    from deploysim.candidates import register
    from deploysim.schemas import conversation_to_row

    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    convs = chats(5, "p")
    lake.write_rows(lake.lake_path("redacted"), [conversation_to_row(c) for c in convs])
    lake.write_rows(lake.lake_path("sample"), [{"conversation_id": c.conversation_id} for c in convs])
    register(cand(server.base_url, name="steady"))
    register(cand(dead_url(), name="ghost"))  # the reproduction: same model, nothing listens

    first = pipeline.run_replay("steady")
    assert first["ok"] == 5 and first["cached_answers"] == 0 and first["answers"] == 5
    again = pipeline.run_replay("steady")
    assert again["cached_answers"] == again["answers"] == 5 and again["http_calls"] == 0
    cache = tmp_path / "raw" / "cache" / "replay.sqlite"
    assert cache.exists() and stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert not (tmp_path / "cache").exists()

    ghost = pipeline.run_replay("ghost")
    assert ghost["ok"] == 0 and ghost["errors"] == 5 and ghost["cached_answers"] == 0
    assert {f["class"] for f in ghost["failure_classes"]} <= {"refused", "endpoint_unusable"}
    assert pipeline.replay_cost("ghost")["failure_classes"] == ghost["failure_classes"]


def cli(logs: Path, base_url: str, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "orchestration.cli",
        "replay",
        str(logs),
        "--base-url",
        base_url,
        "--model",
        "steady",
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--api-key-env",
        KEY_ENV,
        "--quiet",
        "--max-retries",
        "1",
        *extra,
    ]
    env = {
        **os.environ,
        KEY_ENV: SECRET,
        "DEPLOYSIM_HOME": str(out.parent),
        "DEPLOYSIM_REDACT_NER": "0",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def write_logs(path: Path, n: int = 4) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": f"l{i}",
                        "messages": [
                            {"role": "user", "content": f"Please email the invoice to {EMAIL}, order {i}."},
                            {"role": "assistant", "content": "Done."},
                        ],
                    }
                )
                + "\n"
            )
    return path


def test_cli_replay_redacts_before_sending_unless_told_not_to(tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs.jsonl")
    with TinyServer("capture") as tiny:
        run = cli(logs, tiny.base_url, tmp_path / "o.jsonl", tmp_path / "c.sqlite")
        assert run.returncode == 0, run.stderr
        assert len(tiny.bodies) == 4 and not any(EMAIL.encode() in b for b in tiny.bodies)
        assert all(b"<EMAIL_1>" in b for b in tiny.bodies)
        raw = cli(logs, tiny.base_url, tmp_path / "raw.jsonl", tmp_path / "c.sqlite", "--no-redact")
        assert raw.returncode == 0, raw.stderr
        assert len(tiny.bodies) == 8 and all(EMAIL.encode() in b for b in tiny.bodies[4:])


def test_cli_replay_never_prints_or_writes_the_servers_error_text_in_clear(tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs.jsonl")
    out = tmp_path / "o.jsonl"
    with TinyServer("echo400") as tiny:
        run = cli(logs, tiny.base_url, out, tmp_path / "c.sqlite", "--no-redact")
    assert run.returncode == 1
    summary = json.loads(run.stdout)
    assert summary["failure_classes"][0]["class"] == "rejected" and summary["failure_classes"][0]["count"] == 4
    assert "rejected: 4 items" in run.stderr
    for text in (run.stdout, run.stderr, out.read_text()):
        assert EMAIL not in text and SECRET not in text


def test_cli_replay_fresh_reads_no_cache_and_says_where_answers_came_from(server: Any, tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs.jsonl")
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.sqlite"
    assert cli(logs, server.base_url, out, cache).returncode == 0
    before = served(server)
    fresh = cli(logs, server.base_url, out, cache, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert served(server) - before == 4 and json.loads(fresh.stdout)["cached_answers"] == 0
    assert "0 of 4 answers from the cache" in fresh.stderr
    cached = cli(logs, server.base_url, tmp_path / "o2.jsonl", cache)
    assert json.loads(cached.stdout)["cached_answers"] == 4 and "4 of 4 answers from the cache" in cached.stderr
    dead = cli(logs, dead_url(), tmp_path / "o3.jsonl", cache, "--fresh")
    assert dead.returncode == 1
    assert json.loads(dead.stdout)["ok"] == 0 and "refused" in dead.stderr
    unresolved = cli(logs, "http://no-such-host.invalid/v1", tmp_path / "o4.jsonl", cache)
    assert unresolved.returncode == 2 and "the endpoint is unusable: cannot resolve host" in unresolved.stderr
