"""Issue 15, finding 3: every text field of a record is redacted (tool schemas, ids, topic, surface,
tool names, allowed metadata), `deploysim redact` says which fields outside the message text changed,
and the residual-PII scan names the record, field and type of what it finds, never the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploysim import lake, pipeline
from deploysim.privacy.detectors import find_pii
from deploysim.privacy.policies import RedactConfig
from deploysim.privacy.redaction import redact_conversation
from deploysim.schemas import Conversation, Message, ToolCall, conversation_to_row
from orchestration import cli

PLANTED = [
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "bob@example.org",
    "ann@example.org",
    "Mia",
    "mia@example.com",
    "10.0.0.7",
    "lee@example.net",
    "sam@example.com",
]


def _tools() -> list[dict]:
    return [
        {
            "type": "function",
            "function": {
                "name": "lookup_jane.doe@example.com",
                "description": "Find orders. Example: jane.doe@example.com or call +44 20 7946 0958.",
                "parameters": {
                    "type": "object",
                    "required": ["email"],
                    "properties": {
                        "email": {"type": "string", "default": "bob@example.org", "enum": ["ann@example.org", "plain"]},
                        "first_name": {"type": "string", "default": "Mia"},
                        "sam@example.com": {"type": "string"},
                    },
                },
            },
        }
    ]


def _conv(cid: str = "sess-mia@example.com") -> Conversation:
    return Conversation(
        conversation_id=cid,
        topic="refund for mia@example.com",
        surface="kiosk 10.0.0.7",
        tools=_tools(),
        metadata={"user_id": "u123", "note": "escalated by lee@example.net", "reward": 1.0},
        messages=[
            Message(role="user", content="Where is my order?"),
            Message(
                role="assistant",
                tool_calls=[
                    ToolCall(
                        id="call_mia@example.com",
                        name="lookup_jane.doe@example.com",
                        arguments='{"email": "mia@example.com"}',
                    )
                ],
            ),
            Message(
                role="tool", tool_call_id="call_mia@example.com", name="lookup_jane.doe@example.com", content="shipped"
            ),
        ],
    )


CONFIG = RedactConfig(metadata_allow=("note", "reward"))


def test_every_text_field_of_a_record_is_redacted() -> None:
    out, counts = redact_conversation(_conv(), CONFIG)
    blob = json.dumps(out.model_dump(), ensure_ascii=False, sort_keys=True)
    assert [v for v in PLANTED if v in blob] == []
    assert find_pii(blob) == []  # nothing left for the residual-PII check to find
    fn = out.tools[0]["function"]
    # the schema stays a schema: structure, types, keys without personal data and plain values kept
    assert fn["parameters"]["type"] == "object" and fn["parameters"]["required"] == ["email"]
    props = fn["parameters"]["properties"]
    assert {"email", "first_name"} <= set(props) and len(props) == 3
    assert props["email"]["enum"][1] == "plain" and props["email"]["default"].startswith("<EMAIL_")
    assert props["first_name"]["default"].startswith("<PERSON_")  # a personal key's value, as in tool results
    assert "<EMAIL_" in fn["description"] and "<PHONE_" in fn["description"]
    assert out.topic.startswith("refund for <EMAIL_") and out.surface.startswith("kiosk <IP_")
    assert out.metadata["note"].startswith("escalated by <EMAIL_") and out.metadata["reward"] == 1.0
    # ids and tool names holding personal data become one keyed pseudonym wherever they occur
    call, result = out.messages[1].tool_calls[0], out.messages[2]
    assert call.id == result.tool_call_id and call.id.startswith("redacted_")
    assert call.name == result.name == fn["name"] and fn["name"].startswith("redacted_")
    assert out.conversation_id.startswith("redacted_")
    assert out.messages[2].content == "shipped"
    assert {k for k in counts if k.startswith("field:")} == {
        "field:conversation_id",
        "field:topic",
        "field:surface",
        "field:tools",
        "field:metadata.note",
        "field:tool_calls.id",
        "field:tool_calls.name",
        "field:messages.tool_call_id",
        "field:messages.name",
    }


def test_id_pseudonyms_are_stable_and_clean_ids_are_kept() -> None:
    first, _ = redact_conversation(_conv(), CONFIG)
    again, _ = redact_conversation(_conv(), CONFIG)
    assert first.conversation_id == again.conversation_id  # same input, same id across runs
    other_secret, _ = redact_conversation(_conv(), RedactConfig(metadata_allow=("note",), secret="another"))
    assert other_secret.conversation_id != first.conversation_id  # keyed
    sibling, _ = redact_conversation(_conv("sess-mia@example.com-2"), CONFIG)
    assert sibling.conversation_id != first.conversation_id  # ids stay unique
    plain = _conv("conv-000123").model_copy(update={"tools": [], "topic": "billing", "surface": "chat"})
    out, counts = redact_conversation(plain, CONFIG)
    assert out.conversation_id == "conv-000123" and out.topic == "billing" and out.surface == "chat"
    assert "field:conversation_id" not in counts and "field:topic" not in counts


def test_names_in_tool_descriptions_with_ner_and_labels_kept() -> None:
    conv = Conversation(
        conversation_id="n1",
        topic="billing",
        surface="chat",
        messages=[Message(role="user", content="Is my order late?")],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_order",
                    "description": "Escalate to John Smith in Chicago when the order is late.",
                    "parameters": {
                        "type": "object",
                        "properties": {"status": {"type": "string", "enum": ["pending", "late"]}},
                    },
                },
            }
        ],
    )
    out, counts = redact_conversation(conv, RedactConfig(ner=True))
    desc = out.tools[0]["function"]["description"]
    assert "John" not in desc and "Smith" not in desc and "<PERSON_1>" in desc
    assert out.tools[0]["function"]["name"] == "get_order"
    assert out.tools[0]["function"]["parameters"] == conv.tools[0]["function"]["parameters"]
    assert (out.topic, out.surface) == ("billing", "chat") and counts["field:tools"] == 1


def test_pipeline_redact_covers_every_field(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    monkeypatch.setenv("DEPLOYSIM_REDACT_NER", "0")
    monkeypatch.setenv("DEPLOYSIM_METADATA_ALLOW", "note")
    day = tmp_path / pipeline.RAW_INGEST / "day=2026-05-01"  # one day ingested
    lake.write_rows(day / "conversations.parquet", [conversation_to_row(_conv())])
    (day / "VERSION").write_text("ingested\n")
    meta = pipeline.run_redact()
    assert meta["fields_changed"]["tools"] == 1 and meta["fields_changed"]["conversation_id"] == 1
    assert not any(k.startswith("field:") for k in meta["entities"])
    found = pipeline.residual_pii([Path(meta["path"])], metadata={"redact": meta})
    assert found["hits"] == 0, found["places"]


def test_cli_redact_warns_with_counts_per_field(tmp_path: Path, capsys) -> None:
    rec = {
        "id": "sess-mia@example.com",
        "topic": "refund for mia@example.com",
        "surface": "chat",
        "tools": _tools(),
        "messages": [{"role": "user", "content": "Where is my order?"}],
    }
    clean = {"id": "c2", "messages": [{"role": "user", "content": "hello"}]}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(rec) + "\n" + json.dumps(clean) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli.main(["redact", str(src), str(out), "--quiet", "--no-ner"]) == 0
    printed = capsys.readouterr()
    warning = [line for line in printed.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1
    for part in ("conversation_id (1 conversations)", "topic (1 conversations)", "tools (1 conversations)"):
        assert part in warning[0]
    assert "surface" not in warning[0]
    text = out.read_text()
    assert [v for v in PLANTED if v in text] == [] and find_pii(text) == []
    assert not any(v in printed.out + printed.err for v in PLANTED)
    rows = [json.loads(line) for line in text.splitlines()]
    assert rows[1]["id"] == "c2" and rows[0]["tools"][0]["function"]["parameters"]["type"] == "object"


def test_residual_pii_names_record_field_and_type_never_the_value(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    # a lake file as an older redact wrote it: text fields outside the messages left in clear
    convs = [
        Conversation(
            conversation_id=f"c{i}",
            topic="mail mia@example.com",
            tools=_tools(),
            messages=[Message(role="user", content="hello"), Message(role="user", content="I am sam@example.com")],
        )
        for i in range(6)
    ]
    path = lake.lake_path("redacted")
    lake.write_rows(path, [conversation_to_row(c) for c in convs])
    found = pipeline.residual_pii([path])
    assert found["hits"] > 20 and len(found["places"]) == 20
    first = found["places"][:8]
    assert {(p["record"], p["field"], p["type"]) for p in first} >= {
        ("c0", "topic", "EMAIL"),
        ("c0", "messages[1].content", "EMAIL"),
        ("c0", "tools[0].function.description", "EMAIL"),
        ("c0", "tools[0].function.description", "PHONE"),
        ("c0", "tools[0].function.parameters.properties.email.default", "EMAIL"),
        ("c0", "tools[0].function.parameters.properties.email.enum[0]", "EMAIL"),
        ("c0", "tools[0].function.parameters.properties.<key>", "EMAIL"),
    }
    assert all(p["file"] == "redacted.parquet" for p in found["places"])
    shown = json.dumps(found)
    assert [v for v in PLANTED if v in shown] == [] and find_pii(shown) == []


def test_residual_pii_hides_an_id_holding_personal_data(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    lake.write_rows(path, [conversation_to_row(_conv())])
    found = pipeline.residual_pii([path])
    assert found["places"] and all("mia" not in json.dumps(p) for p in found["places"])
    assert found["places"][0]["record"] == "(an id holding personal data)"


@pytest.mark.parametrize("n", [0, 3])
def test_other_files_keep_file_and_type(tmp_path: Path, n: int) -> None:
    f = tmp_path / "summary.md"
    f.write_text("reach me at ann@example.org " * n)
    found = pipeline.residual_pii([f])
    assert found["hits"] == n and found["places"] == [{"file": "summary.md", "type": "EMAIL"}] * n


def test_model_output_placeholders_are_numbered_after_those_in_tool_schemas() -> None:
    # a redacted schema already holds <EMAIL_1>: a new email the model writes must not reuse that number
    from deploysim.schemas import ReplayRecord

    conv = Conversation(
        conversation_id="c1",
        messages=[Message(role="user", content="who do I contact?")],
        tools=[{"type": "function", "function": {"name": "mail", "description": "mail <EMAIL_1>"}}],
    )
    rec = ReplayRecord(
        candidate="x",
        conversation_id="c1",
        status="ok",
        turn=[Message(role="assistant", content="write to jane.roe@example.org")],
    )
    pipeline.redact_outputs([rec], {"c1": conv})
    assert rec.turn[0].content == "write to <EMAIL_2>"
