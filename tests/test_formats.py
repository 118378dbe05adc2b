"""Every supported log format, compression and broken input, with counts that reconcile."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from deploysim import lake
from deploysim.logs.formats import FormatError, detect_format
from deploysim.logs.ingest import IngestError, ingest_files, iter_ingest
from deploysim.schemas import Conversation, conversation_to_row
from orchestration import cli

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEED_DATA = pytest.mark.skipif(not DATA.is_dir(), reason="shared data folder ../shared/data not present")


def _write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _reconciles(res) -> None:
    records = [q for q in res.quarantine if q.line > 0]  # line 0: a whole file, not a record
    assert res.n_read == len(res.conversations) + len(records) + res.duplicates
    assert len(res.quarantine) - len(records) == len(res.files_quarantined)


# ---------------------------------------------------------------------------- formats


def test_sharegpt_with_system_and_function_calls(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "sg.jsonl",
        [
            {
                "id": "s1",
                "system": "be brief",
                "conversations": [
                    {"from": "human", "value": "weather in Paris?"},
                    {
                        "from": "function_call",
                        "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}}),
                    },
                    {"from": "observation", "value": '{"temp": 21}'},
                    {"from": "gpt", "value": "21 degrees."},
                ],
            },
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "wizard", "value": "boo"}]},
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "observation", "value": "orphan"}]},
        ],
    )
    assert detect_format(p) == "sharegpt"
    res = ingest_files([p])
    _reconciles(res)
    conv = res.conversations[0]
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[2].tool_calls[0].name == "get_weather"
    assert json.loads(conv.messages[2].tool_calls[0].arguments) == {"city": "Paris"}
    assert conv.messages[3].name == "get_weather" and conv.kind == "agent"
    reasons = {q.line: q.reason for q in res.quarantine}
    assert reasons[2] == "turn 2 is from unknown speaker 'wizard'"
    assert reasons[3].startswith("tool message 2 answers unknown tool_call_id")


def test_anthropic_transcripts(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "hh.jsonl",
        [
            {
                "chosen": "\n\nHuman: how do I bake bread?\n\nAssistant: Mix flour and water."
                "\n\nHuman: then?\n\nAssistant: Knead it.",
                "rejected": "\n\nHuman: how do I bake bread?\n\nAssistant: No.",
            },
            {"chosen": "no turns at all"},
            {"chosen": "\n\nHuman: hello\n\nAssistant:"},
        ],
    )
    assert detect_format(p) == "anthropic"
    res = ingest_files([p])
    _reconciles(res)
    [conv] = res.conversations
    assert [(m.role, m.content) for m in conv.messages] == [
        ("user", "how do I bake bread?"),
        ("assistant", "Mix flour and water."),
        ("user", "then?"),
        ("assistant", "Knead it."),
    ]
    reasons = {q.line: q.reason for q in res.quarantine}
    assert reasons == {2: "transcript has no 'Human:' or 'Assistant:' turns", 3: "message 2 has empty content"}


def test_openai_content_parts_are_kept_or_recorded_as_omitted(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "oa.jsonl",
        [
            {
                "id": "p",
                "messages": [
                    {"role": "developer", "content": "rules"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is"},
                            {"type": "image_url", "image_url": {"url": "x"}},
                            {"type": "input_audio"},
                            {"type": "text", "text": "this?"},
                        ],
                    },
                    {"role": "assistant", "content": "a cat"},
                ],
            }
        ],
    )
    [conv] = ingest_files([p]).conversations
    assert conv.messages[0].role == "system"
    assert conv.messages[1].content == "what is\n[image]\n[audio]\nthis?"  # non-text parts kept as placeholders
    assert conv.metadata["omitted_parts"] == {"image_url": 1, "input_audio": 1}


def test_project_parquet_round_trips(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "a.jsonl",
        [
            {
                "id": f"c{i}",
                "topic": "billing",
                "messages": [
                    {"role": "user", "content": f"question {i}"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "t1", "content": "ok"},
                    {"role": "assistant", "content": "done"},
                ],
            }
            for i in range(5)
        ],
    )
    convs = ingest_files([src]).conversations
    pq_path = tmp_path / "convs.parquet"
    lake.write_rows(pq_path, [conversation_to_row(c) for c in convs])
    assert detect_format(pq_path) == "parquet"
    again = ingest_files([pq_path])
    assert again.quarantine == [] and [c.model_dump() for c in again.conversations] == [c.model_dump() for c in convs]


def test_gzip_zstd_directory_and_glob(tmp_path: Path) -> None:
    line = json.dumps({"id": "z", "messages": [{"role": "user", "content": "hi"}]}) + "\n"
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.jsonl.gz").write_bytes(gzip.compress(line.replace('"z"', '"g"').encode()))
    (d / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(line.encode()))
    (d / "notes.txt").write_text("not a log")
    res = ingest_files([d])
    assert [c.conversation_id for c in res.conversations] == ["g", "z"]
    assert set(res.formats.values()) == {"openai"}
    assert [c.conversation_id for c in ingest_files([str(d / "*.zst")]).conversations] == ["z"]
    with pytest.raises(IngestError, match="no log files match"):
        ingest_files([str(d / "*.parquet")])


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    p = _write(tmp_path / "x.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    res = ingest_files([p], fmt="sharegpt")
    assert res.conversations == [] and res.quarantine[0].reason == "record has no 'conversations' list"
    with pytest.raises(IngestError, match="unknown format"):
        ingest_files([p], fmt="csv")


def test_undetectable_file_is_quarantined_with_advice(tmp_path: Path) -> None:
    p = _write(tmp_path / "q.jsonl", [{"question_id": 1, "turns": ["a", "b"]}])
    with pytest.raises(FormatError, match="pass the format explicitly"):
        detect_format(p)
    res = ingest_files([p])
    assert res.conversations == [] and res.n_read == 0
    assert [(q.line, q.reason.split(" (")[0]) for q in res.quarantine] == [(0, "not a log file: unrecognised format")]
    assert res.files_quarantined == {str(p): res.quarantine[0].reason}


# ---------------------------------------------------------------------------- broken inputs

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    p = tmp_path / "broken.jsonl"
    lines = [
        json.dumps({**GOOD, "id": "ok1"}).encode(),  # 1 ok
        b'{"id": "t", "messages": [{"role": "user", "content": "hi"}',  # 2 truncated JSON
        json.dumps({"messages": [{"content": "no role"}]}).encode(),  # 3 missing role
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(),  # 4 wrong role
        json.dumps({"messages": [{"role": "user", "content": ""}]}).encode(),  # 5 empty content
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',  # 6 invalid UTF-8 (latin-1 byte)
        b'{"messages": [{"role": "user", "content": "raw \x01 control"}]}',  # 7 raw control char inside JSON
        json.dumps(
            {"id": "cc", "messages": [{"role": "user", "content": "bell\u0007 and esc\u001b[0m kept text"}]}
        ).encode(),  # 8 ok, cleaned
        json.dumps({"messages": [{"role": "user", "content": "x" * 10_500_000}]}).encode(),  # 9 a 10 MB message
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_x", "content": "{}"},
                ]
            }
        ).encode(),  # 10 tool result without call
        json.dumps({**GOOD, "id": "ok1"}).encode(),  # 11 exact duplicate of 1
    ]
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


def test_broken_inputs_are_quarantined_with_reasons(broken: Path) -> None:
    res = ingest_files([broken])
    _reconciles(res)
    assert (res.n_read, len(res.conversations), len(res.quarantine), res.duplicates) == (11, 2, 8, 1)
    r = {q.line: q.reason for q in res.quarantine}
    assert r[2].startswith("line is not valid JSON")
    assert r[3] == "message 1 has no role"
    assert r[4].startswith("message 1 has unknown role 'robot'")
    assert r[5] == "message 1 has empty content"
    assert r[6] == "line is not valid UTF-8 (byte 0xe9 at col 47)"
    assert r[7].startswith("line is not valid JSON: Invalid control character")
    assert r[9].startswith("message 1 is 10,500,000 characters long, above the 1,000,000 limit")
    assert r[10].startswith("tool message 2 answers unknown tool_call_id 'call_x'")
    cleaned = next(c for c in res.conversations if c.conversation_id == "cc")
    assert cleaned.messages[0].content == "bell and esc[0m kept text"
    assert cleaned.metadata["control_chars_removed"] == 2


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    body = "".join(json.dumps({**GOOD, "id": f"c{i}"}) + "\n" for i in range(2000)).encode()
    blob = gzip.compress(body)
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(blob[: len(blob) // 2])
    res = ingest_files([p])
    _reconciles(res)
    assert 0 < len(res.conversations) < 2000
    assert [q.line for q in res.quarantine] == [0]
    assert res.quarantine[0].reason.startswith(f"truncated gzip stream after {len(res.conversations):,} records")


def test_streaming_yields_before_the_file_ends(tmp_path: Path) -> None:
    p = _write(tmp_path / "many.jsonl", [{**GOOD, "id": f"c{i}"} for i in range(50)])
    it = iter_ingest([p])
    first = next(it)
    assert isinstance(first, Conversation) and first.conversation_id == "c0"
    it.close()


# ---------------------------------------------------------------------------- real data


@NEED_DATA
def test_real_files_of_every_shared_format(tmp_path: Path) -> None:
    hh = ingest_files([DATA / "hh-rlhf-harmless-base"])
    assert set(hh.formats.values()) == {"anthropic"}
    _reconciles(hh)
    assert hh.n_read == 2312
    assert len(hh.conversations) >= 2300  # a handful end on an empty assistant turn
    assert all(q.reason.endswith("has empty content") for q in hh.quarantine)
    tau = ingest_files([DATA / "tau-bench-airline" / "gpt-4o-airline_trajectories_trials0-1.jsonl"])
    assert set(tau.formats.values()) == {"taubench"} and tau.quarantine == [] and len(tau.conversations) == 100
    assert tau.conversations[0].conversation_id == "tau-0-0" and tau.conversations[0].kind == "agent"
    assert tau.conversations[0].metadata["user_id"] == "mia_li_3668"


# ---------------------------------------------------------------------------- command line


def test_cli_ingest_and_redact(broken: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["ingest", str(broken), "--quiet"]) == cli.EXIT_PASS
    out = capsys.readouterr().out
    assert f"{broken}: openai" in out
    assert "read 11: accepted 2, quarantined 8, duplicates dropped 1" in out
    assert f"quarantined {broken}:3: message 1 has no role" in out
    empty = _write(tmp_path / "bad.jsonl", ["{oops"])
    assert cli.main(["ingest", str(empty), "--quiet"]) == 2  # nothing valid was read

    src = _write(
        tmp_path / "pii.jsonl",
        [
            {
                "id": "p1",
                "messages": [
                    {"role": "user", "content": "I'm jo@example.com, SSN 123-45-6789, card 4111 1111 1111 1111"},
                    {"role": "assistant", "content": "Thanks jo@example.com"},
                ],
            },
            {"id": "p2", "messages": [{"role": "user", "content": "call +44 20 7946 0958"}]},
        ],
    )
    out_file = tmp_path / "out" / "red.jsonl.gz"
    assert cli.main(["redact", str(src), str(out_file), "--quiet", "--no-ner", "--policy", "SSN=drop"]) == 0
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in gzip.decompress(out_file.read_bytes()).decode().splitlines()]
    assert [r["id"] for r in rows] == ["p2"]  # p1 held an SSN: dropped by policy
    assert rows[0]["messages"][0]["content"] == "call <PHONE_1>"
    assert "(1 dropped by policy)" in printed and "PHONE" in printed
