"""Issue 12, item 4: more export formats, detected automatically, and any other JSON layout through
--records-path / --messages-field / --role-field / --content-field. One small hand-written fixture
per format (tests/fixtures/formats, shapes from each export's public documentation)."""

from __future__ import annotations

import gzip
import json
import shutil
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from deploysim.logs.formats import FormatError, detect_format
from deploysim.logs.formats.documents import FieldMap
from deploysim.logs.ingest import IngestCounts, ingest_files, iter_ingest
from deploysim.schemas import Conversation
from orchestration import cli

FORMATS_DIR = Path(__file__).parent / "fixtures" / "formats"
DOC = FORMATS_DIR / "custom_document.json"
DOC_LAYOUT = [
    "--records-path",
    "results.samples",
    "--messages-field",
    "instance.conversation_a",
    "--role-field",
    "author.role",
    "--content-field",
    "body",
]
DETECTED = {
    "agent_tool_shapes.jsonl": "openai",
    "openai_batch_input.jsonl": "openai_batch",
    "openai_batch_output.jsonl": "openai_batch",
    "openai_stored_completions.jsonl": "openai_batch",
    "lmsys_chat.jsonl": "lmsys",
    "wildchat.jsonl": "lmsys",
    "hf_chat.parquet": "huggingface",
    "langfuse_traces.json": "json",
    "langfuse_trace.json": "json",
    "langsmith_runs.jsonl": "langsmith",
    "otel_genai.jsonl": "otel",
}


def _ingest(name: str, **kw):
    res = ingest_files([FORMATS_DIR / name], **kw)
    records = [q for q in res.quarantine if q.line > 0]
    assert res.n_read == len(res.conversations) + len(records) + res.duplicates
    return res


def _turns(conv: Conversation) -> list[tuple[str, str | None]]:
    return [(m.role, m.content) for m in conv.messages]


def test_every_fixture_is_detected_as_its_format() -> None:
    assert {p.name for p in FORMATS_DIR.iterdir() if not p.name.startswith("README")} == {*DETECTED, DOC.name}
    assert {name: detect_format(FORMATS_DIR / name) for name in DETECTED} == DETECTED
    assert detect_format(DOC, fields=FieldMap(records_path="results.samples")) == "json"
    with pytest.raises(FormatError, match="the document holds no list of records"):
        detect_format(DOC)  # where its records are must be said


def test_openai_batch_input_output_and_stored_completions() -> None:
    res = _ingest("openai_batch_input.jsonl")
    first, second = res.conversations
    assert first.conversation_id == "request-1" and first.metadata["model"] == "gpt-4o-mini"
    assert _turns(first)[-1] == ("user", "Summarise: the meeting moved to Thursday at 3pm.")
    assert second.tools[0]["function"]["name"] == "get_weather"
    out = _ingest("openai_batch_output.jsonl")  # the answers alone: their requests are not given
    assert out.conversations == []
    assert [q.reason for q in out.quarantine] == [
        "Batch output line 'request-1' matches no request of the batch input files given"
    ]
    [stored] = _ingest("openai_stored_completions.jsonl").conversations
    assert stored.conversation_id == "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2"
    assert _turns(stored) == [
        ("system", "Answer in one sentence."),
        ("user", "How do I reset my router?"),
        ("assistant", "Hold the reset button for ten seconds until the lights blink."),
    ]
    assert stored.metadata["timestamp"] == "2025-02-07T20:36:50Z"


def test_openai_batch_output_joins_its_input(tmp_path: Path, capsys) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    # the output file sorts first; it is read after the input all the same
    shutil.copy(FORMATS_DIR / "openai_batch_output.jsonl", batch / "a_output.jsonl")
    shutil.copy(FORMATS_DIR / "openai_batch_input.jsonl", batch / "b_input.jsonl")
    counts = IngestCounts()
    convs = [c for c in iter_ingest([batch], counts=counts) if isinstance(c, Conversation)]
    assert [c.conversation_id for c in convs] == ["request-1", "request-2"]
    assert _turns(convs[0])[-1] == ("assistant", "The meeting is now on Thursday at 3pm.")
    assert convs[0].metadata == {"model": "gpt-4o-mini-2024-07-18", "timestamp": "2024-05-01T08:00:00Z"}
    assert _turns(convs[1])[-1][0] == "user"  # no answer in the output file: the request alone
    assert (counts.n_read, counts.accepted, counts.quarantined, counts.batch_answers_joined) == (2, 2, 0, 1)
    assert cli.main(["ingest", str(batch), "--quiet"]) == 0
    assert "OpenAI Batch answers joined to their requests: 1" in capsys.readouterr().out


def test_lmsys_and_wildchat_rows() -> None:
    [lmsys] = _ingest("lmsys_chat.jsonl").conversations
    assert lmsys.conversation_id == "33f01939a744455c869cb234afca47f1"
    assert [r for r, _ in _turns(lmsys)] == ["user", "assistant"]
    assert lmsys.metadata == {"model": "wizardlm-13b", "turn": 1, "language": "English"}
    [wild] = _ingest("wildchat.jsonl").conversations
    assert wild.conversation_id == "c9ec5b440fbdd2a269333dd241f32f64"
    assert wild.messages[0].content == "Write a haiku about the sea"
    assert "hashed_ip" not in wild.metadata and wild.metadata["timestamp"].startswith("2023-04-09")


def test_hugging_face_parquet_with_a_messages_column() -> None:
    res = _ingest("hf_chat.parquet")
    assert [c.conversation_id for c in res.conversations] == ["a1f0c9e2b7d84c3fa2e1", "b2e1d0f3c8e95d4ab3f2"]
    assert _turns(res.conversations[1])[2:] == [("user", "And one above 100?"), ("assistant", "101.")]


def test_langfuse_trace_list_and_full_trace() -> None:
    [listed] = _ingest("langfuse_traces.json").conversations  # {"data": [...], "meta": {...}}
    assert listed.conversation_id == "7f9a2c1e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
    assert listed.metadata["user_id"] == "user-8812"
    assert _turns(listed)[-1][0] == "assistant"
    [full] = _ingest("langfuse_trace.json").conversations  # the last generation holds the conversation
    assert [m.role for m in full.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert full.messages[2].tool_calls[0].name == "lookup_order"
    assert full.messages[-1].content == "Order 1042 shipped yesterday and arrives Friday."
    assert full.metadata["model"] == "gpt-4o-2024-08-06"


def test_langsmith_llm_runs_and_other_runs_quarantined() -> None:
    res = _ingest("langsmith_runs.jsonl")
    [run] = res.conversations
    assert [m.role for m in run.messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = run.messages[2].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "call_tR4in",
        "search_trains",
        {"from": "Bern", "to": "Milan", "date": "tomorrow"},
    )
    assert run.messages[3].tool_call_id == "call_tR4in"
    assert run.messages[-1].content == "The 07:33 from Bern arrives in Milan at 10:50."
    assert run.metadata["model"] == "gpt-4o-mini"
    assert [q.reason for q in res.quarantine] == ["LangSmith chain run: only llm runs hold a conversation"]


def test_otel_genai_spans() -> None:
    res = _ingest("otel_genai.jsonl")
    chat, flat = res.conversations  # the tool and HTTP spans are not conversations
    assert chat.conversation_id == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert chat.messages[3].content == "rainy, 57°F" and chat.messages[3].name == "get_weather"
    assert chat.metadata["model"] == "gpt-4o-2024-08-06"
    assert _turns(flat) == [
        ("system", "You write short jokes."),
        ("user", "Tell me a joke about OpenTelemetry"),
        ("assistant", "Why did the span go to therapy? It had too many unresolved parents."),
    ]
    [q] = res.quarantine
    assert q.line == 1 and q.reason.startswith("GenAI span without captured messages")


def test_json_document_with_records_path_and_field_mapping() -> None:
    fields = FieldMap("results.samples", "instance.conversation_a", "author.role", "body")
    res = _ingest("custom_document.json", fields=fields)
    assert [c.conversation_id for c in res.conversations] == ["eval-0001", "eval-0002"]
    assert _turns(res.conversations[0]) == [
        ("user", "Give me three names for a bakery."),
        ("assistant", "Crumb & Co, Rise Up, The Daily Loaf."),
    ]
    assert [(q.line, q.reason) for q in res.quarantine] == [
        (3, "messages field 'instance.conversation_a' not found: no key 'conversation_a' at 'instance' (keys: none)")
    ]


def test_top_level_array_and_mapped_jsonl(tmp_path: Path) -> None:
    arr = tmp_path / "export.json"
    arr.write_text(json.dumps([{"messages": [{"role": "user", "content": "hi"}]}, {"prompt": "x"}], indent=2))
    res = ingest_files([arr])
    assert res.formats == {str(arr): "json"} and len(res.conversations) == 1
    assert res.quarantine[0].reason.startswith("record looks like no known format (keys: prompt)")
    lines = tmp_path / "chats.jsonl"
    lines.write_text(
        json.dumps({"dialog": {"turns": [{"who": "Human", "said": "hello"}, {"who": "AI", "said": "hi"}]}})
    )
    res = ingest_files([lines], fields=FieldMap(messages_field="dialog.turns", role_field="who", content_field="said"))
    assert res.formats == {str(lines): "mapped"} and _turns(res.conversations[0]) == [
        ("user", "hello"),
        ("assistant", "hi"),
    ]


def test_cli_ingest_json_document_with_layout_options(capsys) -> None:
    assert cli.main(["ingest", str(DOC), "--quiet", *DOC_LAYOUT]) == cli.EXIT_PASS
    out = capsys.readouterr().out
    assert f"{DOC}: json" in out
    assert "read 3: accepted 2, quarantined 1, duplicates dropped 0" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "the document holds no list of records (keys: exported_at, results, version); say where it is"),
        (
            ["--records-path", "results.sample"],
            "records path 'results.sample' not found: no key 'sample' at 'results' (keys: samples)",
        ),
        (["--records-path", "version"], "records path 'version' holds a JSON int, not a list of records"),
    ],
)
def test_cli_says_which_file_and_which_keys(args: list[str], says: str, capsys) -> None:
    assert cli.main(["ingest", str(DOC), "--quiet", *args]) == 2  # nothing accepted
    out = capsys.readouterr()
    assert f"{DOC}: quarantined file: {says}" in out.out
    assert "Traceback" not in out.out + out.err


def test_cli_refuses_a_malformed_path(capsys) -> None:
    assert cli.main(["ingest", str(DOC), "--records-path", "results..samples"]) == 2
    out = capsys.readouterr()
    said = out.out + out.err
    assert "error: --records-path 'results..samples' is not a dotted path of keys" in said and "Traceback" not in said


def test_cli_redact_of_a_directory_mixing_every_format(tmp_path: Path, capsys) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(FORMATS_DIR, mixed)
    (mixed / "openai.jsonl").write_text(
        json.dumps({"id": "o1", "messages": [{"role": "user", "content": "mail me at jo@example.com"}]}) + "\n"
    )
    (mixed / "sharegpt.jsonl").write_text(
        json.dumps({"id": "s1", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hey"}]})
        + "\n"
    )
    (mixed / "hh.jsonl.gz").write_bytes(
        gzip.compress((json.dumps({"chosen": "\n\nHuman: hello\n\nAssistant: hi there"}) + "\n").encode())
    )
    (mixed / "tau.jsonl").write_text(
        json.dumps({"task_id": 3, "trial": 0, "reward": 1.0, "traj": [{"role": "user", "content": "book"}]}) + "\n"
    )
    out = tmp_path / "redacted.jsonl"
    assert cli.main(["redact", str(mixed), str(out), "--no-ner", "--quiet"]) == 0
    printed = capsys.readouterr().out
    counts = IngestCounts()
    streamed = sum(1 for _ in iter_ingest([mixed], counts=counts))
    # every record read is yielded, kept or quarantined, and a file quarantined whole once
    assert streamed == counts.accepted + counts.quarantined + len(counts.files_quarantined)
    assert set(counts.formats.values()) == {
        "openai",
        "sharegpt",
        "anthropic",
        "taubench",
        "openai_batch",
        "lmsys",
        "huggingface",
        "json",
        "langsmith",
        "otel",
    }
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts.n_read == counts.accepted + counts.quarantined + counts.duplicates
    assert len(rows) == counts.accepted == 21  # no policy drops here
    assert (
        f"read {counts.n_read}: accepted {counts.accepted}, quarantined {counts.quarantined}, "
        f"duplicates dropped 0; wrote {len(rows)} redacted conversations to {out}"
    ) in printed
    assert f"{mixed / 'custom_document.json'}: quarantined file: the document holds no list of records" in printed
    assert "tool calls without ids (stable ids synthesized)" in printed
    assert all(r["messages"] and all("role" in m for m in r["messages"]) for r in rows)
    assert "jo@example.com" not in out.read_text() and "<EMAIL_1>" in out.read_text()
    n, ids = duckdb.sql(  # the one output file, read back by DuckDB
        f"select count(*), count(distinct json_extract_string(json, '$.id')) from read_ndjson_objects('{out}')"
    ).fetchall()[0]
    assert n == ids == counts.accepted


def test_grade_reads_a_json_document_with_layout_options(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grades.jsonl"
    assert cli.main(["grade", str(DOC), "--out", str(out), *DOC_LAYOUT]) == 0
    assert "graded 2 conversations (1 quarantined)" in capsys.readouterr().out
    assert {json.loads(line)["conversation_id"] for line in out.read_text().splitlines()} == {"eval-0001", "eval-0002"}


def test_run_passes_layout_options_to_the_ingest_asset(tmp_path: Path, monkeypatch) -> None:
    warnings.simplefilter("ignore")
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    from assets.ingest import ingest
    from deploysim.days import file_day
    from orchestration.resources import Settings

    args = cli.build_parser().parse_args(["run", "someone", "--logs", str(DOC), *DOC_LAYOUT])
    s = cli.run_settings(args)
    assert (s.records_path, s.messages_field, s.role_field, s.content_field) == (
        "results.samples",
        "instance.conversation_a",
        "author.role",
        "body",
    )
    day = file_day(DOC)  # its records have no timestamp: the day of the file
    with dg.instance_for_test() as inst:
        res = dg.materialize([ingest], instance=inst, resources={"settings": Settings.of(s)}, partition_key=day)
    meta = res.asset_materializations_for_node("ingest")[0].metadata
    assert (meta["read"].value, meta["accepted"].value, meta["quarantined"].value) == (3, 2, 1)
    assert meta["formats"].value == {"json": 1} and meta["dated_by_file"].value == 2
    raw = tmp_path / "raw" / "ingest" / f"day={day}" / "conversations.parquet"
    rows = duckdb.sql(f"select conversation_id from read_parquet('{raw}') order by 1").fetchall()
    assert rows == [("eval-0001",), ("eval-0002",)]


def test_undetectable_json_document_is_a_format_error(tmp_path: Path) -> None:
    p = tmp_path / "notes.json"
    p.write_text('{\n  "title": "not logs",\n  "pages": 3\n}\n')
    res = ingest_files([p])
    assert res.files_quarantined == {
        str(p): "the document holds no list of records (keys: pages, title); say where it is with --records-path"
    }
    bad = tmp_path / "broken.json"
    bad.write_text('[\n  {"messages": []},\n')
    with pytest.raises(FormatError):
        detect_format(bad)


def test_a_json_file_of_other_records_beside_logs_is_quarantined_whole(tmp_path: Path) -> None:
    """A tool-schema file in a log directory (as tau-bench ships) is one quarantined file, not records."""
    (tmp_path / "tools.json").write_text(
        json.dumps([{"type": "function", "function": {"name": "book", "parameters": {}}}], indent=2)
    )
    (tmp_path / "logs.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    res = ingest_files([tmp_path])
    assert res.n_read == 1 and len(res.conversations) == 1
    assert res.files_quarantined == {
        str(tmp_path / "tools.json"): "not a log file: a JSON document whose records look like no known format "
        "(keys of the first: function, type); give --messages-field (and --role-field, --content-field) "
        "for another layout"
    }
