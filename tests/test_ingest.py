"""Ingest: valid records accepted, malformed lines quarantined with reasons, inputs checked."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from deploysim.logs.ingest import IngestError, ingest_files
from deploysim_testkit import demo

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _line(obj) -> str:
    return json.dumps(obj)


GOOD = {"id": "c1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
LINES = [
    _line(GOOD),  # 1 ok
    "",  # 2 blank: not a record
    '{"messages": [{"role": "user", "content": "hi"}',  # 3 truncated
    _line({"id": "c3", "prompt": "hi"}),  # 4 no messages
    _line({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}),  # 5 bad role
    _line(
        {"messages": [{"role": "system", "content": "be nice"}, {"role": "assistant", "content": "ok"}]}
    ),  # 6 no user
    _line(
        {
            "messages": [  # 7 unknown tool_call_id
                {"role": "user", "content": "order ORD-123?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "call_9", "content": "{}"},
            ]
        }
    ),
    _line({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "  "}]}),  # 8 empty content
    _line(
        {
            "topic": "coding",
            "surface": "api",
            "messages": [  # 9 ok: content parts
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                        {"type": "text", "text": "this?"},
                    ],
                },
                {"role": "assistant", "content": "a cat"},
            ],
        }
    ),
    _line(
        {"messages": [{"role": "user", "content": "no id here"}, {"role": "assistant", "content": "fine"}]}
    ),  # 10 ok: hashed id
    _line(GOOD),  # 11 duplicate id
    "[1, 2, 3]",  # 12 not an object
    "   ",  # 13 blank
]


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    p = tmp_path / "messy.jsonl"
    p.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return p


def test_malformed_lines_are_quarantined_with_reasons(messy: Path) -> None:
    res = ingest_files([messy])
    assert res.n_read == 11
    assert len(res.conversations) == 3
    assert res.duplicates == 1  # line 11 repeats line 1 exactly: dropped and counted, not quarantined
    assert res.n_read == len(res.conversations) + len(res.quarantine) + res.duplicates
    assert all(q.source_file == str(messy) for q in res.quarantine)
    reasons = {q.line: q.reason for q in res.quarantine}
    assert reasons[3].startswith("line is not valid JSON: ") and "(col " in reasons[3]
    assert reasons[4] == "record has no 'messages' list"
    assert reasons[5].startswith("message 2 has unknown role 'bot'")
    assert reasons[6] == "conversation has no user message"
    assert reasons[7].startswith("tool message 3 answers unknown tool_call_id 'call_9'")
    assert reasons[8] == "message 2 has empty content"
    assert reasons[12] == "record is a JSON list, not an object"
    assert set(reasons) == {3, 4, 5, 6, 7, 8, 12}


def test_accepted_records_are_normalised(messy: Path) -> None:
    res = ingest_files([messy])
    by_text = {c.messages[0].content: c for c in res.conversations}
    parts = by_text["what is\n[image]\nthis?"]  # the image part kept as a placeholder
    assert (parts.topic, parts.surface) == ("coding", "api")
    hashed = by_text["no id here"]
    assert len(hashed.conversation_id) == 16 and int(hashed.conversation_id, 16) >= 0
    # the content hash is stable across runs
    assert ingest_files([messy]).conversations[2].conversation_id == hashed.conversation_id
    assert res.conversations[0].conversation_id == "c1"


def test_tool_calls_are_parsed(tmp_path: Path) -> None:
    p = tmp_path / "agent.jsonl"
    rec = {
        "messages": [
            {"role": "user", "content": "where is order ORD-123?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_order_status", "arguments": {"order_id": "ORD-123"}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": ""},
            {"role": "assistant", "content": "It shipped."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_order_status"}}],
    }
    p.write_text(_line(rec) + "\n")
    res = ingest_files([p])
    assert res.quarantine == []
    conv = res.conversations[0]
    call = conv.messages[1].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_1", "get_order_status", {"order_id": "ORD-123"})
    assert conv.messages[2].name == "get_order_status" and conv.messages[2].content == ""
    assert conv.kind == "agent"


def test_bad_utf8_line_does_not_stop_the_run(tmp_path: Path) -> None:
    p = tmp_path / "bytes.jsonl"
    p.write_bytes(
        _line(GOOD).encode() + b"\n" + b'{"messages": "\xff\xfe"}\n' + _line({**GOOD, "id": "c2"}).encode() + b"\n"
    )
    res = ingest_files([p])
    assert [c.conversation_id for c in res.conversations] == ["c1", "c2"]
    assert len(res.quarantine) == 1 and res.quarantine[0].line == 2
    assert res.quarantine[0].reason.startswith("line is not valid UTF-8")


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(IngestError, match="nope.jsonl"):
        ingest_files([missing])


def test_directory_without_logs_raises_and_gzip_is_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(IngestError, match="empty"):
        ingest_files([empty])
    gz = tmp_path / "logs.jsonl"  # gzip content behind a plain name: found by its magic bytes
    gz.write_bytes(gzip.compress(_line(GOOD).encode()))
    assert [c.conversation_id for c in ingest_files([gz]).conversations] == ["c1"]


def test_directory_reads_every_jsonl_sorted(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "b.jsonl").write_text(_line({**GOOD, "id": "b"}) + "\n")
    (d / "a.jsonl").write_text(_line({**GOOD, "id": "a"}) + "\n" + _line({**GOOD, "id": "a2"}) + "\n")
    (d / "skip.txt").write_text(_line({**GOOD, "id": "txt"}) + "\n")
    res = ingest_files([d, d / "a.jsonl"])  # a file named twice is read once
    assert [c.conversation_id for c in res.conversations] == ["a", "a2", "b"]
    assert res.n_read == 3


def test_demo_logs_ingest_cleanly(tmp_path: Path) -> None:
    paths = demo.generate(tmp_path, n=2000)
    res = ingest_files([paths.logs.parent])
    assert res.quarantine == []
    assert res.n_read == len(res.conversations) == 2000
    truth = [json.loads(line) for line in paths.truth.read_text().splitlines()]
    assert [c.conversation_id for c in res.conversations] == [t["id"] for t in truth]
    assert [c.kind for c in res.conversations] == [t["kind"] for t in truth]
    assert all(c.metadata.get("timestamp") for c in res.conversations)


@pytest.mark.skipif(
    not (DATA / "tau-bench-airline").is_dir(), reason="shared tau-bench data not present at ../shared/data"
)
def test_real_agent_trajectories_ingest_cleanly(tmp_path: Path) -> None:
    src = DATA / "tau-bench-airline" / "gpt-4o-airline_trajectories_trials0-1.jsonl"
    tools = json.loads((DATA / "tau-bench-airline" / "airline_tools.json").read_text())
    out = tmp_path / "tau.jsonl"
    with open(src) as fin, open(out, "w") as fout:
        for line in fin:
            r = json.loads(line)
            fout.write(_line({"id": f"tau-{r['task_id']}-{r['trial']}", "messages": r["traj"], "tools": tools}) + "\n")
    res = ingest_files([out])
    assert res.quarantine == [] and len(res.conversations) == 100
    assert all(c.kind == "agent" for c in res.conversations)
    assert sum(len(m.tool_calls) for c in res.conversations for m in c.messages) > 100


def test_same_id_with_different_content_is_quarantined(tmp_path: Path) -> None:
    p = tmp_path / "ids.jsonl"
    other = {**GOOD, "messages": [{"role": "user", "content": "something else"}]}
    p.write_text(_line(GOOD) + "\n" + _line(other) + "\n")
    res = ingest_files([p])
    assert [c.conversation_id for c in res.conversations] == ["c1"]
    assert res.duplicates == 0
    assert res.quarantine[0].line == 2
    assert res.quarantine[0].reason.startswith("duplicate conversation id 'c1' with different content (first seen at ")
