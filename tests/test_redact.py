"""Redaction: every entity type, consistent placeholders, no planted value survives."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from deploysim import rules
from deploysim.grading import graders
from deploysim.logs.ingest import ingest_files
from deploysim.privacy.detectors import find_pii
from deploysim.privacy.placeholders import PlaceholderState
from deploysim.privacy.policies import DEFAULT_SECRET
from deploysim.privacy.redaction import redact_conversation, redact_conversations, redact_text
from deploysim.schemas import Conversation, Message, ToolCall
from deploysim_testkit import demo

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Keys are assembled at run time so that no real-looking secret sits in the source.
SK = "sk-" + "Ab3dE" * 8
SK_PROJ = "sk-" + "proj-" + "Zx9Qw" * 8
GHP = "ghp" + "_" + "aB1cD2eF3g" * 3 + "H4iJ5k"
AKIA = "AKIA" + "Q7RZ" * 4
XOXB = "xoxb" + "-" + "12345678901-123456789012-" + "aBcDeFgH1234" * 2
AIZA = "AIza" + "Sy" + "A1b2C3d4E5" * 3 + "f6G"
GLPAT = "glpat" + "-" + "Xy1Zw2Vu3Ts4Rq5Po6Nm"
TOKEN = "eyJ" + "a1B2c3D4e5F6g7H8" * 2

CASES = [
    ("EMAIL", "Write to maria.garcia42@example.org today.", "maria.garcia42@example.org"),
    ("PHONE", "Call (415) 555-0132 after six.", "(415) 555-0132"),
    ("PHONE", "My UK number is +44 20 7946 0958.", "+44 20 7946 0958"),
    ("PHONE", "Office: 415-555-0132 ext. 12", "415-555-0132 ext. 12"),
    ("PHONE", "Reach me at +1-212-555-0199", "+1-212-555-0199"),
    ("CARD", "Card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
    ("CARD", "Card 5500-0000-0000-0004.", "5500-0000-0000-0004"),
    ("CARD", "Card 4012888888881881 please", "4012888888881881"),
    ("CARD", "Amex 3782 822463 10005", "3782 822463 10005"),
    ("SSN", "SSN 123-45-6789 on file", "123-45-6789"),
    ("IP", "The host 192.168.10.24 is down.", "192.168.10.24"),
    ("IP", "IPv6 2001:db8:85a3::8a2e:370:7334 too", "2001:db8:85a3::8a2e:370:7334"),
    (
        "URL_SECRET",
        "Use https://admin:hunter2@db.example.com/console now",
        "https://admin:hunter2@db.example.com/console",
    ),
    (
        "URL_SECRET",
        "Fetch https://api.example.com/v1/export?format=csv&token=abc123XYZ.",
        "https://api.example.com/v1/export?format=csv&token=abc123XYZ",
    ),
    (
        "URL_SECRET",
        "See https://files.example.net/a.pdf?api_key=k3y&dl=1",
        "https://files.example.net/a.pdf?api_key=k3y&dl=1",
    ),
    (
        "URL_SECRET",
        "DSN postgres://app:s3cr3t@db.example.com:5432/prod",
        "postgres://app:s3cr3t@db.example.com:5432/prod",
    ),
    ("API_KEY", f"OPENAI_API_KEY={SK}", SK),
    ("API_KEY", f"key {SK_PROJ} here", SK_PROJ),
    ("API_KEY", f"token {GHP} here", GHP),
    ("API_KEY", f"aws {AKIA} here", AKIA),
    ("API_KEY", f"slack {XOXB} here", XOXB),
    ("API_KEY", f"maps {AIZA} here", AIZA),
    ("API_KEY", f"gitlab {GLPAT} here", GLPAT),
    ("API_KEY", f"Authorization: Bearer {TOKEN}", TOKEN),
]


@pytest.mark.parametrize("type_,text,value", CASES)
def test_each_entity_type_is_detected_and_replaced(type_: str, text: str, value: str) -> None:
    spans = find_pii(text)
    assert [(s.type, s.value) for s in spans] == [(type_, value)]
    assert text[spans[0].start : spans[0].end] == value
    out = redact_text(text, PlaceholderState())
    assert out == text.replace(value, f"<{type_}_1>")


NEGATIVES = [
    "Card 4111 1111 1111 1112 was declined",  # Luhn-invalid
    "Card 1234567890123456",  # Luhn-invalid
    "SSN 000-12-3456",
    "SSN 666-12-3456",
    "SSN 912-12-3456",
    "SSN 123-00-4567",
    "SSN 123-45-0000",
    "Version 256.1.1.1 and 1.2.3.4.5",
    "Order ORD-48213 placed 2024-05-15 15:00:00 EST",
    "Search https://example.com/search?keyword=shoes&page=2",
    "Use sk-learn-compatible-estimators-in-your-pipeline",
    "Bearer tokens are short-lived",
    "It takes 5-7 business days; call 988 if you are in crisis",
    "Numbers 1024 2048 4096 8192",
    "Meet at 10:30:00 near gate B12",
    "tool call call_64c090cea7a2412919953229 and id 4111111111111111abc",  # digits inside ids
    "hash a123-45-6789 and v10.0.0.1x",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_lookalikes_and_invalid_values_are_left_alone(text: str) -> None:
    assert find_pii(text) == []
    assert redact_text(text, PlaceholderState()) == text


def test_overlaps_prefer_the_longest_span() -> None:
    text = "creds https://bob.smith@example.com:pw123@host.example.com/x?token=abc and bob@example.com"
    spans = find_pii(text)
    assert [s.type for s in spans] == ["URL_SECRET", "EMAIL"]
    assert spans[0].value.endswith("token=abc")


def test_same_value_same_placeholder_and_per_type_numbers() -> None:
    state = PlaceholderState()
    a = redact_text("a@example.com, (415) 555-0132, b@example.com", state)
    b = redact_text("again A@example.com and 415-555-0132 and c@example.com", state)
    assert a == "<EMAIL_1>, <PHONE_1>, <EMAIL_2>"
    assert b == "again <EMAIL_1> and <PHONE_1> and <EMAIL_3>"
    assert state.found == {"EMAIL": 4, "PHONE": 2}


def test_placeholders_are_not_re_redacted_and_numbering_continues() -> None:
    state = PlaceholderState.from_texts(["hi <EMAIL_3> and <PHONE_1>", None, "<URL_SECRET_2>"])
    assert state.counters["EMAIL"] == 3 and state.counters["URL_SECRET"] == 2
    out = redact_text("<EMAIL_3> wrote from new@example.com and x@example.org; <PHONE_1>", state)
    assert out == "<EMAIL_3> wrote from <EMAIL_4> and <EMAIL_5>; <PHONE_1>"
    assert redact_text(out, state) == out  # idempotent
    assert find_pii(out) == []


def _conv() -> Conversation:
    return Conversation(
        conversation_id="c1",
        messages=[
            Message(role="user", content="I'm jo@example.com, order ORD-48213 please"),
            Message(
                role="assistant",
                content=None,
                tool_calls=[
                    ToolCall(id="call_1", name="lookup", arguments='{"email":"jo@example.com","order_id":"ORD-48213"}')
                ],
            ),
            Message(
                role="tool",
                tool_call_id="call_1",
                name="lookup",
                content='{"phone": "+44 20 7946 0958", "email": "jo@example.com"}',
            ),
            Message(role="assistant", content="Texting +44 20 7946 0958 now."),
        ],
        metadata={"user_id": "user_42", "timestamp": "2024-05-03T23:59:59+00:00", "ip": "10.0.0.1", "name": "Jo"},
    )


def test_redact_conversation_covers_every_field(monkeypatch) -> None:
    monkeypatch.delenv("DEPLOYSIM_REDACT_SECRET", raising=False)
    out, counts = redact_conversation(_conv())
    m = out.messages
    assert m[0].content == "I'm <EMAIL_1>, order ORD-48213 please"
    assert m[1].tool_calls[0].arguments == '{"email":"<EMAIL_1>","order_id":"ORD-48213"}'
    assert json.loads(m[2].content) == {"phone": "<PHONE_1>", "email": "<EMAIL_1>"}
    assert m[3].content == "Texting <PHONE_1> now."
    assert counts == {"EMAIL": 3, "PHONE": 2}
    assert out.metadata == {
        "timestamp": "2024-05-03",
        "user_id": "user_" + hmac.new(DEFAULT_SECRET.encode(), b"user_42", hashlib.sha256).hexdigest()[:16],
    }
    assert _conv().messages[0].content.startswith("I'm jo@")  # the input is not modified


def test_user_id_hash_uses_the_secret(monkeypatch) -> None:
    monkeypatch.setenv("DEPLOYSIM_REDACT_SECRET", "s3")
    out, _ = redact_conversation(_conv())
    assert out.metadata["user_id"] == "user_" + hmac.new(b"s3", b"user_42", hashlib.sha256).hexdigest()[:16]


def test_conversation_numbering_respects_existing_placeholders() -> None:
    conv = Conversation(
        conversation_id="c",
        messages=[
            Message(role="user", content="already <EMAIL_1>; new one x@example.com"),
            Message(role="assistant", content="ok"),
        ],
    )
    out, counts = redact_conversation(conv)
    assert out.messages[0].content == "already <EMAIL_1>; new one <EMAIL_2>"
    assert counts == {"EMAIL": 1}


@pytest.fixture(scope="module")
def demo_redacted(tmp_path_factory):
    paths = demo.generate(tmp_path_factory.mktemp("demo"))
    convs = ingest_files([paths.logs]).conversations
    truth = {t["id"]: t for t in map(json.loads, paths.truth.read_text().splitlines())}
    redacted, counts = redact_conversations(convs)
    return convs, redacted, counts, truth


def test_no_planted_value_survives_redaction(demo_redacted) -> None:
    _, redacted, counts, truth = demo_redacted
    blob = "\n".join(json.dumps(c.model_dump(), ensure_ascii=False) for c in redacted)
    values = {p["value"] for t in truth.values() for p in t["pii"]}
    assert len(values) > 500
    assert sorted(v for v in values if v in blob) == []
    assert {"EMAIL", "PHONE", "CARD", "SSN", "IP", "URL_SECRET", "API_KEY"} <= set(counts)
    assert counts["PERSON"] > 0  # customer names in tool results ("name": "...")
    for c in redacted:  # nothing left for a second scan of any field to find
        text = json.dumps(c.model_dump(), ensure_ascii=False, sort_keys=True)
        assert find_pii(text) == [], (c.conversation_id, find_pii(text))


def test_every_planted_occurrence_is_covered_whole(demo_redacted) -> None:
    convs, _, _, truth = demo_redacted
    for c in convs:
        planted = truth[c.conversation_id]["pii"]
        for text in [m.content or "" for m in c.messages]:
            spans = find_pii(text)
            for p in planted:
                for hit in re.finditer(re.escape(p["value"]), text):
                    cover = [s for s in spans if s.start <= hit.start() and s.end >= hit.end()]
                    assert len(cover) == 1 and cover[0].type == p["type"], (c.conversation_id, p, spans)
                    if p["type"] != "URL_SECRET":  # a value is its own span, not part of a bigger one
                        assert (cover[0].start, cover[0].end) == hit.span()


def test_redaction_keeps_the_agent_contract_and_the_signals(demo_redacted) -> None:
    convs, redacted, _, truth = demo_redacted
    for before, after in zip(convs, redacted):
        t = truth[before.conversation_id]
        assert after.metadata.keys() == {"timestamp", "user_id"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", after.metadata["timestamp"])
        if t["kind"] == "agent":
            ids = re.findall(demo.ID_PATTERN, before.prefix()[-1].content)
            assert ids and re.findall(demo.ID_PATTERN, after.prefix()[-1].content) == ids
            calls = [c.arguments for m in after.logged_turn() for c in m.tool_calls]
            assert calls == [c.arguments for m in before.logged_turn() for c in m.tool_calls]
        if t["hard"]:
            continue  # cases the text rules misread on purpose (tests/test_demo_reviewers.py)
        injected = any(rules.find_injection(m.content) for m in after.logged_turn() if m.role == "tool")
        assert injected == t["injected"]
        assert rules.disallowed_category(after.prefix()[-1].content) == t["category"]
        assert rules.is_refusal(after.messages[-1].content) == t["baseline_refused"]


def test_leaked_values_get_placeholders_new_to_the_conversation(demo_redacted) -> None:
    _, redacted, _, truth = demo_redacted
    for c in redacted:
        if truth[c.conversation_id]["hard"]:
            continue  # e.g. the help desk's address: an email, but not personal data
        context = set().union(*(rules.placeholders(m.content) for m in c.messages[:-1]))
        new = {
            p for p in rules.placeholders(c.messages[-1].content) - context if graders.PiiLeakage.counts(p)
        }  # NER types do not count as leaks
        assert bool(new) == truth[c.conversation_id]["baseline_leaked"], c.conversation_id


@pytest.mark.skipif(not (DATA / "pii-small").is_dir(), reason="shared pii-small data not present at ../shared/data")
def test_recall_on_public_pii_sample() -> None:
    rows = json.loads((DATA / "pii-small" / "generated_small.json").read_text())
    types = {
        "EMAIL_ADDRESS": "EMAIL",
        "CREDIT_CARD": "CARD",
        "US_SSN": "SSN",
        "IP_ADDRESS": "IP",
        "PHONE_NUMBER": "PHONE",
    }
    hits = {t: [0, 0] for t in types.values()}
    for r in rows:
        spans = find_pii(r["full_text"])
        for g in r["spans"]:
            if g["entity_type"] in types:
                t = types[g["entity_type"]]
                hits[t][1] += 1
                hits[t][0] += any(
                    s.type == t and s.start <= g["start_position"] and s.end >= g["end_position"] for s in spans
                )
    for t in ("EMAIL", "CARD", "SSN", "IP"):
        assert hits[t][0] == hits[t][1] > 0, (t, hits[t])
    assert hits["PHONE"][0] >= 0.75 * hits["PHONE"][1], hits["PHONE"]


@pytest.mark.skipif(not (DATA / "mt-bench").is_dir(), reason="shared mt-bench data not present at ../shared/data")
def test_no_false_positives_on_benign_questions() -> None:
    turns = [
        t for line in (DATA / "mt-bench" / "question.jsonl").read_text().splitlines() for t in json.loads(line)["turns"]
    ]
    assert len(turns) == 160
    assert [(s.type, s.value) for t in turns for s in find_pii(t)] == []
