"""Issue 12, item 3: lenient where logs differ harmlessly (tool calls without ids, arguments as
objects, `function` role, empty content beside tool calls, non-text parts, Anthropic and Gemini
tool shapes), each counted; strict where data would be lost."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from deploysim.logs.ingest import IngestCounts, ingest_files, iter_ingest
from orchestration import cli

FIXTURES = Path(__file__).parent / "fixtures"
SHAPES = FIXTURES / "formats" / "agent_tool_shapes.jsonl"
AGENTDOJO_FIXTURE = FIXTURES / "real" / "agentdojo" / "agentdojo_traces.jsonl.gz"
AGENTDOJO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "agentdojo-injection-runs"


def _calls(conv) -> list[tuple[str, str]]:
    """(call id, name) of every call, and (tool_call_id, name) of every result, in order."""
    out = []
    for m in conv.messages:
        out += [("call", c.id, c.name) for c in m.tool_calls]
        if m.role == "tool":
            out.append(("result", m.tool_call_id, m.name))
    return out


def test_agent_tool_shapes_are_read_and_each_leniency_counted() -> None:
    counts = IngestCounts()
    items = list(iter_ingest([SHAPES], counts=counts))
    convs = {c.conversation_id: c for c in items if hasattr(c, "conversation_id")}
    assert counts.n_read == 6 and counts.accepted == 5 and counts.quarantined == 1

    no_ids = convs["agent-no-ids"]
    assert _calls(no_ids) == [
        ("call", "synth_3_1", "search_emails"),
        ("call", "synth_3_2", "get_calendar"),
        ("result", "synth_3_1", "search_emails"),
        ("result", "synth_3_2", "get_calendar"),
    ]
    assert no_ids.messages[2].tool_calls[0].arguments == '{"query": "from:ana"}'  # an object, as JSON text
    assert no_ids.metadata["tool_call_ids_synthesized"] == 2

    claude = convs["msg_01Aq9w938a90dw8q"]
    assert [m.role for m in claude.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert claude.messages[2].content == "I'll check the current weather in San Francisco."
    assert _calls(claude) == [
        ("call", "toolu_01A09q90qw90lq917835lq9", "get_weather"),
        ("result", "toolu_01A09q90qw90lq917835lq9", "get_weather"),
    ]
    assert claude.tools[0]["function"]["parameters"]["required"] == ["location"]

    gemini = convs["gemini-req-7"]
    assert [m.role for m in gemini.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert _calls(gemini) == [("call", "synth_3_1", "find_theaters"), ("result", "synth_3_1", "find_theaters")]
    assert json.loads(gemini.messages[3].content)["content"]["movie"] == "Barbie"
    assert gemini.tools[0]["function"]["name"] == "find_theaters"

    assert _calls(convs["function-role"])[1] == ("result", "call_t1", "get_time")
    assert convs["image-part"].messages[0].content == "What breed is this dog?\n[image]"

    assert counts.as_dict()["leniencies"] == {
        "tool_call_id_synthesized": {"records": 2, "items": 3},
        "tool_result_paired_in_order": {"records": 2, "items": 3},
        "tool_arguments_object": {"records": 3, "items": 3},
        "function_role_message": {"records": 1, "items": 1},
        "empty_content_with_tool_calls": {"records": 3, "items": 3},
        "content_part_placeholder": {"records": 1, "items": 1},
        "anthropic_tool_blocks": {"records": 1, "items": 2},
        "gemini_parts": {"records": 1, "items": 4},
    }


def test_synthesized_ids_are_stable_across_runs() -> None:
    first, second = ingest_files([SHAPES]), ingest_files([SHAPES])
    assert [_calls(c) for c in first.conversations] == [_calls(c) for c in second.conversations]
    assert [c.conversation_id for c in first.conversations] == [c.conversation_id for c in second.conversations]


def test_strict_where_a_result_would_be_lost(tmp_path: Path) -> None:
    p = tmp_path / "strict.jsonl"
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}  # no id
    recs = [
        {"id": "orphan", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]},
        {  # two results for one call: the second answers nothing
            "id": "extra",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": "1"},
                {"role": "tool", "content": "2"},
            ],
        },
        {  # a named result whose name no open call has
            "id": "wrong-name",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "function", "name": "g", "content": "1"},
            ],
        },
        {
            "id": "ok",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": "1"},
            ],
        },
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = ingest_files([p])
    assert [c.conversation_id for c in res.conversations] == ["ok"]
    assert [(q.line, q.reason) for q in res.quarantine] == [
        (1, "tool message 2 has no tool_call_id"),
        (2, "tool message 4 has no tool_call_id"),
        (3, "message 3 is a legacy function result for 'g' with no earlier function_call"),
    ]
    assert res.leniencies == Counter(
        {"tool_call_id_synthesized": 1, "tool_result_paired_in_order": 1, "empty_content_with_tool_calls": 1}
    )


def _blank_generated_ids(src: Path, dst: Path) -> int:
    """The AgentDojo traces as Gemini recorded them: empty tool-call ids (the shared copy replaced them
    by generated ones). Returns how many traces had them."""
    n = 0
    with gzip.open(src, "rt") as fin, open(dst, "w") as fout:
        for line in fin:
            rec = json.loads(line)
            if rec.get("tool_call_ids_generated"):
                n += 1
                for m in rec["messages"]:
                    for c in m.get("tool_calls") or []:
                        c["id"] = ""
                    if m["role"] == "tool":
                        m["tool_call_id"] = ""
            fout.write(json.dumps(rec) + "\n")
    return n


def test_real_agentdojo_traces_with_empty_ids_pair_as_recorded(tmp_path: Path) -> None:
    blank = tmp_path / "agentdojo_blank_ids.jsonl"
    n_blank = _blank_generated_ids(AGENTDOJO_FIXTURE, blank)
    assert n_blank == 10  # the fixture's README: 10 Gemini traces
    original, lenient = ingest_files([AGENTDOJO_FIXTURE]), ingest_files([blank])
    assert len(lenient.conversations) == len(original.conversations) == 37
    assert lenient.quarantine == original.quarantine == []
    n_calls = 0
    for before, after in zip(original.conversations, lenient.conversations):
        # the same calls answered by the same results: only the ids differ, one for one
        assert [(k, n) for k, _, n in _calls(before)] == [(k, n) for k, _, n in _calls(after)]
        mapping = {(b, a) for (_, b, _), (_, a, _) in zip(_calls(before), _calls(after))}
        assert len({b for b, _ in mapping}) == len({a for _, a in mapping}) == len(mapping)
        if after.metadata.get("tool_call_ids_synthesized"):
            n = sum(len(m.tool_calls) for m in after.messages)
            assert after.metadata["tool_call_ids_synthesized"] == n and all(a.startswith("synth_") for _, a in mapping)
            n_calls += n
    assert lenient.leniencies["tool_call_id_synthesized"] == n_blank  # records
    assert n_calls > n_blank


@pytest.mark.skipif(not AGENTDOJO.is_dir(), reason="shared AgentDojo data not present at ../shared/data")
def test_real_agentdojo_file_through_the_cli(capsys) -> None:
    assert cli.main(["ingest", str(AGENTDOJO), "--quiet", "--show", "0"]) == cli.EXIT_PASS
    out = capsys.readouterr().out
    assert "read 1,988: accepted 1,972, quarantined 16, duplicates dropped 0" in out
    assert "     16  message … has empty content" in out  # empty final answers without tool calls: still strict
    assert "1,164 records (3,535x)  empty assistant content beside tool calls" in out


@pytest.mark.skipif(not AGENTDOJO.is_dir(), reason="shared AgentDojo data not present at ../shared/data")
def test_real_agentdojo_file_with_geminis_empty_ids(tmp_path: Path, capsys) -> None:
    """The 465 Gemini traces as recorded (empty ids): all but those with an empty final answer are accepted."""
    blank = tmp_path / "agentdojo_blank_ids.jsonl"
    assert _blank_generated_ids(AGENTDOJO / "agentdojo_traces.jsonl.gz", blank) == 465
    assert cli.main(["ingest", str(blank), "--quiet", "--show", "0"]) == cli.EXIT_PASS
    out = capsys.readouterr().out
    assert "read 1,988: accepted 1,972, quarantined 16, duplicates dropped 0" in out
    assert "     459 records (1,620x)  tool calls without ids (stable ids synthesized)" in out
    assert "     459 records (1,620x)  tool results without a call id (paired with calls in order)" in out


def test_cli_ingest_of_agent_logs_without_ids(tmp_path: Path, capsys) -> None:
    blank = tmp_path / "agentdojo_blank_ids.jsonl"
    _blank_generated_ids(AGENTDOJO_FIXTURE, blank)
    assert cli.main(["ingest", str(blank), "--quiet"]) == cli.EXIT_PASS
    out = capsys.readouterr().out
    assert "read 37: accepted 37, quarantined 0, duplicates dropped 0" in out
    calls = sum(
        len(m.tool_calls)
        for c in ingest_files([blank]).conversations
        if c.metadata.get("tool_call_ids_synthesized")
        for m in c.messages
    )
    assert f"      10 records ({calls:,}x)  tool calls without ids (stable ids synthesized)" in out
    assert f"      10 records ({calls:,}x)  tool results without a call id (paired with calls in order)" in out
