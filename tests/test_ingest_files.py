"""Ingest of whole files (issue 15, finding 7 and part of 15): a bad file is quarantined as a
file and the others go on; truncated gzip/zstd are reported; skipped files are counted;
image-only and legacy function_call messages get a clear outcome."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import zstandard

from deploysim import pipeline
from deploysim.logs.ingest import ingest_files
from orchestration import cli


def _conv(i: int) -> dict:
    return {
        "id": f"c{i}",
        "messages": [
            {"role": "user", "content": f"question {i} " * 4},
            {"role": "assistant", "content": f"answer {i}"},
        ],
    }


def _body(n: int, start: int = 0) -> bytes:
    return "".join(json.dumps(_conv(i)) + "\n" for i in range(start, start + n)).encode()


@pytest.fixture()
def logs(tmp_path: Path) -> Path:
    """A directory of good logs mixed with an empty, a garbage, a corrupt and non-log files."""
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    (d / "a.jsonl").write_bytes(_body(5))
    (d / "sub" / "b.jsonl.gz").write_bytes(gzip.compress(_body(5, start=5)))
    (d / "empty.jsonl").write_bytes(b"")
    (d / "garbage.jsonl").write_bytes(os.urandom(2000))
    blob = gzip.compress(_body(200, start=100))
    (d / "corrupt.jsonl.gz").write_bytes(blob[:12] + b"\xff" * 40 + blob[52:])
    (d / "broken.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
    (d / "README.md").write_text("these are our logs\n")
    (d / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return d


def test_bad_files_are_quarantined_as_files_and_the_others_go_on(logs: Path) -> None:
    res = ingest_files([logs])
    assert [c.conversation_id for c in res.conversations] == [f"c{i}" for i in range(10)]
    reasons = {Path(f).name: why for f, why in res.files_quarantined.items()}
    assert reasons["empty.jsonl"] == "empty file"
    assert reasons["garbage.jsonl"].startswith("not a log file: unrecognised format")
    assert reasons["corrupt.jsonl.gz"].startswith("corrupt gzip stream: ")
    assert reasons["broken.parquet"].startswith("corrupt Parquet file: ")
    assert set(reasons) == {"empty.jsonl", "garbage.jsonl", "corrupt.jsonl.gz", "broken.parquet"}
    file_entries = [q for q in res.quarantine if q.line == 0]
    assert {(Path(q.source_file).name, q.reason) for q in file_entries} == set(reasons.items())
    assert res.n_read == 10 + len(res.quarantine) - len(file_entries)  # record counts still reconcile
    assert {Path(f).name: why for f, why in res.files_skipped.items()} == {
        "README.md": "not a log file name (expected .jsonl, .ndjson, .json or .parquet; plain, .gz or .zst)",
        ".DS_Store": "hidden file",
    }


def test_blank_only_file_is_reported_empty(tmp_path: Path) -> None:
    p = tmp_path / "blank.jsonl"
    p.write_text("\n  \n\n")
    res = ingest_files([p])
    assert [(q.line, q.reason) for q in res.quarantine] == [(0, "empty file: no records")]
    forced = ingest_files([p], fmt="openai")  # no detection: still reported
    assert [(q.line, q.reason) for q in forced.quarantine] == [(0, "empty file: no records")]


@pytest.mark.parametrize("cut", ["half", "last_bytes"])
def test_truncated_zstd_is_reported_with_the_records_before_the_cut(tmp_path: Path, cut: str) -> None:
    blob = zstandard.ZstdCompressor().compress(_body(3000))
    p = tmp_path / "cut.jsonl.zst"
    p.write_bytes(blob[: len(blob) // 2] if cut == "half" else blob[:-3])
    res = ingest_files([p])
    n = len(res.conversations)
    assert n < 3000 and [c.conversation_id for c in res.conversations] == [f"c{i}" for i in range(n)]
    assert [q.line for q in res.quarantine] == [0]
    assert res.quarantine[0].reason.startswith(f"truncated zstd stream after {n:,} records")
    assert res.files_quarantined == {str(p): res.quarantine[0].reason}


def test_whole_zstd_of_several_frames_reads_to_the_end(tmp_path: Path) -> None:
    zc = zstandard.ZstdCompressor()
    p = tmp_path / "frames.jsonl.zst"
    p.write_bytes(zc.compress(_body(1500)) + zc.compress(_body(1500, start=1500)))
    res = ingest_files([p])
    assert len(res.conversations) == 3000 and res.quarantine == [] and res.files_quarantined == {}


def test_corrupt_zstd_is_reported(tmp_path: Path) -> None:
    blob = zstandard.ZstdCompressor().compress(_body(3000))
    p = tmp_path / "bad.jsonl.zst"
    p.write_bytes(blob[:20] + b"\xff" * 200 + blob[220:])
    res = ingest_files([p])
    assert [q.line for q in res.quarantine] == [0]
    assert res.quarantine[0].reason.startswith("corrupt zstd stream")


def test_cli_ingest_prints_file_quarantine_and_skipped_files(logs: Path, tmp_path: Path, capsys) -> None:
    qfile = tmp_path / "q.jsonl"
    assert cli.main(["ingest", str(logs), "--quiet", "--quarantine", str(qfile)]) == 0
    out = capsys.readouterr().out
    assert "read 10: accepted 10, quarantined 0, duplicates dropped 0" in out
    assert f"{logs / 'empty.jsonl'}: quarantined file: empty file" in out
    assert f"{logs / 'corrupt.jsonl.gz'}: quarantined file: corrupt gzip stream: " in out
    assert "files: 6 opened, 4 quarantined, 2 skipped" in out
    assert f"skipped {logs / 'README.md'}: not a log file name" in out
    assert f"skipped {logs / '.DS_Store'}: hidden file" in out
    rows = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert sorted(Path(r["source_file"]).name for r in rows if r["line"] == 0) == [
        "broken.parquet",
        "corrupt.jsonl.gz",
        "empty.jsonl",
        "garbage.jsonl",
    ]


def test_pipeline_ingest_counts_bad_and_skipped_files(logs: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))
    meta = pipeline.run_ingest(str(logs))
    assert meta["accepted"] == 10
    assert {Path(f).name for f in meta["files_quarantined"]} == {
        "empty.jsonl",
        "garbage.jsonl",
        "corrupt.jsonl.gz",
        "broken.parquet",
    }
    assert meta["files_skipped"] == 2 and sum(meta["files_skipped_reasons"].values()) == 2


# ---------------------------------------------------------------------------- messages (finding 15)


def test_image_only_message_is_quarantined_with_a_clear_reason(tmp_path: Path) -> None:
    p = tmp_path / "img.jsonl"
    p.write_text(
        json.dumps(
            {
                "id": "i1",
                "messages": [
                    {"role": "system", "content": "be helpful"},
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                    },
                    {"role": "assistant", "content": "a cat"},
                ],
            }
        )
        + "\n"
    )
    res = ingest_files([p])
    assert [q.reason for q in res.quarantine] == ["message 2 has only image content (no text to replay)"]


def test_legacy_function_call_becomes_a_tool_call(tmp_path: Path) -> None:
    p = tmp_path / "legacy.jsonl"
    p.write_text(
        json.dumps(
            {
                "id": "f1",
                "messages": [
                    {"role": "user", "content": "weather in Paris?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {"role": "function", "name": "get_weather", "content": '{"temp": 18}'},
                    {"role": "assistant", "content": "18 degrees."},
                ],
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "f2",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "function", "name": "get_weather", "content": "{}"},
                ],
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "f3",
                "messages": [  # a result without a name answers the oldest call
                    {"role": "user", "content": "time?"},
                    {"role": "assistant", "function_call": {"name": "now", "arguments": {}}},
                    {"role": "function", "content": "12:00"},
                ],
            }
        )
        + "\n"
    )
    res = ingest_files([p])
    conv, unnamed = res.conversations
    assert unnamed.messages[2].tool_call_id == unnamed.messages[1].tool_calls[0].id
    call = conv.messages[1].tool_calls[0]
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    tool = conv.messages[2]
    assert (tool.role, tool.tool_call_id, tool.name, tool.content) == ("tool", call.id, "get_weather", '{"temp": 18}')
    assert [q.reason for q in res.quarantine] == [
        "message 2 is a legacy function result for 'get_weather' with no earlier function_call"
    ]
