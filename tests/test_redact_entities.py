"""The production-grade detectors, NER, per-type policies, metadata and the residual-PII check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploysim import lake, pipeline
from deploysim.logs.ingest import ingest_files
from deploysim.privacy.detectors import find_pii, iban_ok
from deploysim.privacy.placeholders import PlaceholderState
from deploysim.privacy.policies import RedactConfig, RedactConfigError, coarsen_time
from deploysim.privacy.redaction import redact_conversation, redact_conversations, redact_metadata, redact_text
from deploysim.schemas import Conversation, Message, conversation_to_row
from deploysim_testkit import demo

CASES = [
    ("IBAN", "Wire it to DE89 3704 0044 0532 0130 00 today", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "IBAN GB82WEST12345698765432.", "GB82WEST12345698765432"),
    ("MAC", "device 00:1A:2B:3C:4D:5E joined", "00:1A:2B:3C:4D:5E"),
    ("MAC", "router a4-5e-60-c2-9b-11 rebooted", "a4-5e-60-c2-9b-11"),
    ("DATE_OF_BIRTH", "I was born on 04/05/1990 in a small town", "04/05/1990"),
    ("DATE_OF_BIRTH", "DOB: March 3, 1985", "March 3, 1985"),
    ("ADDRESS", "Ship it to 1600 Pennsylvania Avenue please", "1600 Pennsylvania Avenue"),
    ("ADDRESS", "I live at 42 Maple Street, Apt 3B now", "42 Maple Street, Apt 3B"),
    ("SECRET", "db password=Tr0ub4dor&3x in the config", "Tr0ub4dor&3x"),
    ("SECRET", "token 9fQ2xLm7Rt5Vb8Nc1Zp4Kw6Hy3Jd0Ga in a log", "9fQ2xLm7Rt5Vb8Nc1Zp4Kw6Hy3Jd0Ga"),
    ("PHONE", "ring 020 7946 0958 tonight", "020 7946 0958"),
    ("PERSON", '{"first_name": "Mia", "last_name": "Li"}', "Mia"),
    ("DATE_OF_BIRTH", '{"dob": "1990-04-05"}', "1990-04-05"),
]


@pytest.mark.parametrize("type_,text,value", CASES)
def test_new_entity_types(type_: str, text: str, value: str) -> None:
    spans = find_pii(text)
    assert (type_, value) in [(s.type, s.value) for s in spans], spans
    assert value not in redact_text(text, PlaceholderState())


NEGATIVES = [
    "IBAN DE89 3704 0044 0532 0130 02 is mistyped",  # mod-97 fails
    "Released on 2024-05-03 at 10:00",  # a date without birth context
    "I walked 3 blocks down the road",  # not an address
    "call_4ZP1mKsbo4dnQ6YHhJEaeStm answered",  # a tool-call id, not a secret
    "see sciencedirect.com/science/article/pii/S096098220600021X",
    '{"name": "get_order_status", "order_id": "ORD-48213", "payment_id": "certificate_7504069"}',
    "version 1.2.3 and build 20240503",
    # a data version (16 hex) that passes mod-97 for BE; the BE BBAN is 12 digits (seen in grade metadata)
    "lake/grade/candidate=regressing/version=be199b57db52f1d8/grade.parquet",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_new_detectors_leave_lookalikes_alone(text: str) -> None:
    assert find_pii(text) == []


def test_iban_checksum() -> None:
    assert (
        iban_ok("DE89370400440532013000")
        and not iban_ok("DE89370400440532013001")
        and not iban_ok("XX89370400440532013000")
    )


def test_ner_finds_names_places_and_organisations() -> None:
    text = "Yesterday Maria Fernandez flew from Chicago to meet the lawyers at Goldman Sachs about order ORD-48213."
    found = {(s.type, s.value) for s in find_pii(text, ner=True)}
    assert ("PERSON", "Maria Fernandez") in found
    assert ("LOCATION", "Chicago") in found
    assert any(t == "ORGANIZATION" and "Goldman" in v for t, v in found)
    assert not any("ORD" in v for _, v in found)
    assert find_pii("Hi <PERSON_1>, your order <EMAIL_2> ORD-48213 shipped.", ner=True) == []


def _conv(metadata=None) -> Conversation:
    return Conversation(
        conversation_id="c",
        metadata=metadata or {},
        messages=[
            Message(role="user", content="I'm Maria Fernandez, jo@example.com. Maria here again."),
            Message(role="assistant", content="Thanks Maria Fernandez, I wrote to jo@example.com."),
        ],
    )


def test_names_are_consistent_within_a_conversation() -> None:
    out, counts = redact_conversation(_conv(), RedactConfig(ner=True))
    assert out.messages[0].content == "I'm <PERSON_1>, <EMAIL_1>. <PERSON_1> here again."
    assert out.messages[1].content == "Thanks <PERSON_1>, I wrote to <EMAIL_1>."
    assert counts["PERSON"] == 3 and counts["EMAIL"] == 2


def test_policies_mask_hash_and_drop() -> None:
    conv = Conversation(
        conversation_id="p", messages=[Message(role="user", content="card 4111 1111 1111 1111, mail jo@example.com")]
    )
    cfg = RedactConfig(policies=(("CARD", "mask"), ("EMAIL", "hash")), secret="k1")
    out, _ = redact_conversation(conv, cfg)
    text = out.messages[0].content
    assert text.startswith("card **** **** **** 1111, mail <EMAIL_#")
    again, _ = redact_conversation(conv.model_copy(update={"conversation_id": "q"}), cfg)
    assert again.messages[0].content == text  # the keyed pseudonym links across conversations
    other, _ = redact_conversation(conv, RedactConfig(policies=(("EMAIL", "hash"),), secret="k2"))
    assert other.messages[0].content.split("mail ")[1] != text.split("mail ")[1]  # and depends on the secret
    assert find_pii(text) == []
    kept, counts = redact_conversations([conv, _conv()], RedactConfig(policies=(("CARD", "drop"),)))
    assert [c.conversation_id for c in kept] == ["c"] and counts["conversations_dropped"] == 1
    with pytest.raises(RedactConfigError, match="unknown redaction policy"):
        RedactConfig(policies=(("CARD", "shred"),))


def test_metadata_hashing_granularity_and_allow_list() -> None:
    meta = {
        "user_id": "u1",
        "timestamp": "2024-05-03T23:59:59+02:00",
        "note": "call me at jo@example.com",
        "reward": 1.0,
        "ip": "10.0.0.1",
    }
    out = redact_metadata(meta, RedactConfig(time_granularity="hour", metadata_allow=("note", "reward")))
    assert out["timestamp"] == "2024-05-03T21:00" and out["reward"] == 1.0
    assert (
        out["note"] == "call me at <EMAIL_1>"
        and "ip" not in out
        and out["user_id"].startswith("user_")
        and len(out["user_id"]) == 21
    )
    assert coarsen_time("2024-05-08T10:00:00Z", "week") == "2024-05-06"
    assert coarsen_time(0, "month") == "1970-01"
    assert redact_metadata(meta, RedactConfig())["timestamp"] == "2024-05-03"


def test_config_from_settings_and_the_environment(monkeypatch) -> None:
    from deploysim import settings

    monkeypatch.setenv("DEPLOYSIM_REDACT_POLICY", "ssn=drop, EMAIL=hash")
    monkeypatch.setenv("DEPLOYSIM_REDACT_NER", "1")
    monkeypatch.setenv("DEPLOYSIM_TIME_GRANULARITY", "month")
    monkeypatch.setenv("DEPLOYSIM_PHONE_REGIONS", "de, fr")
    cfg = RedactConfig.from_settings(settings.load())
    assert (
        cfg.ner and cfg.policy("SSN") == "drop" and cfg.policy("EMAIL") == "hash" and cfg.policy("PHONE") == "replace"
    )
    assert cfg.time_granularity == "month" and cfg.phone_regions == ("DE", "FR")
    assert RedactConfig.from_settings(settings.load(time_granularity="week")).time_granularity == "week"  # a flag wins


# ---------------------------------------------------------------------------- residual-PII check


def test_residual_pii_check_fails_on_a_planted_value(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg

    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))
    from orchestration.checks import redact_has_no_residual_pii

    instance = dg.DagsterInstance.ephemeral()

    paths = demo.generate(tmp_path / "raw", n=300)
    convs = ingest_files([paths.logs]).conversations
    redacted, _ = redact_conversations(convs)
    out = lake.lake_path("redacted")
    lake.write_rows(out, [conversation_to_row(c) for c in redacted])
    assert pipeline.residual_pii([out])["hits"] == 0
    assert redact_has_no_residual_pii(dg.build_asset_check_context(instance=instance)).passed

    planted = redacted[7].model_copy(
        update={
            "messages": [*redacted[7].messages[:-1], Message(role="assistant", content="mail me: leak.me@example.org")]
        }
    )
    lake.write_rows(out, [conversation_to_row(c) for c in [*redacted[:7], planted, *redacted[8:]]])
    found = pipeline.residual_pii([out])
    assert found["hits"] == 1 and found["by_type"] == {"EMAIL": 1}
    result = redact_has_no_residual_pii(dg.build_asset_check_context(instance=instance))
    assert not result.passed
    assert "leak.me" not in json.dumps({k: str(v) for k, v in result.metadata.items()})  # counts only, never values


def test_residual_pii_scans_dagster_metadata(tmp_path: Path, monkeypatch) -> None:
    """The scan the blocking checks run over materialisation metadata: a real redact run's metadata
    (wrapped as Dagster does) is clean; one planted value in a report's Markdown fails it."""
    import dagster as dg

    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))
    paths = demo.generate(tmp_path / "raw", n=200)
    pipeline.run_ingest(str(paths.logs))
    meta = pipeline.run_redact()
    wrapped = {k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()}
    summary = (
        "| behaviour | rate |\n|---|---|\n| pii_leak | 0.50% [0.10%, 1.20%] |\n"
        "Example: <PERSON_1> asked about <EMAIL_2>."
    )
    clean = {
        "redact": wrapped,
        "report": {"markdown": dg.MetadataValue.md(summary), "path": dg.MetadataValue.path(str(tmp_path))},
    }
    assert pipeline.residual_pii([], metadata=clean) == {"hits": 0, "by_type": {}, "by_file": {}, "places": []}

    leaked = summary.replace("<EMAIL_2>", "mia.li@example.com")
    planted = clean | {
        "report": {"markdown": dg.MetadataValue.md(leaked)},
        "grade": {"examples": dg.MetadataValue.json({"rows": [{"detail": "ssn 123-45-6789"}]})},
    }
    found = pipeline.residual_pii([], metadata=planted)
    assert found["by_type"] == {"EMAIL": 1, "SSN": 1}
    assert found["by_file"] == {"metadata:report": 1, "metadata:grade": 1}
    assert found["places"] == [{"file": "metadata:report", "type": "EMAIL"}, {"file": "metadata:grade", "type": "SSN"}]
    assert "mia.li" not in json.dumps(found)


def test_user_id_in_text_gets_the_metadata_pseudonym() -> None:
    from deploysim.privacy.policies import hash_user_id

    conv = Conversation(
        conversation_id="t",
        metadata={"user_id": "mia_li_3668"},
        messages=[
            Message(role="user", content="My user id is mia_li_3668, reservation 4WQ150."),
            Message(
                role="assistant",
                content="",
                tool_calls=[{"id": "call_1", "name": "get_user_details", "arguments": '{"user_id": "mia_li_3668"}'}],
            ),
            Message(role="tool", tool_call_id="call_1", content='{"user_id": "MIA_LI_3668", "other": "mia_li_36689"}'),
        ],
    )
    cfg = RedactConfig(secret="k1")
    out, counts = redact_conversation(conv, cfg)
    digest = hash_user_id("mia_li_3668", cfg)
    assert out.metadata["user_id"] == f"user_{digest}"
    ph = f"<USER_ID_#{digest[:10]}>"
    assert out.messages[0].content == f"My user id is {ph}, reservation 4WQ150."
    assert out.messages[1].tool_calls[0].arguments == f'{{"user_id": "{ph}"}}'
    assert out.messages[2].content == f'{{"user_id": "{ph}", "other": "mia_li_36689"}}'  # a longer id is another user
    assert counts["USER_ID"] == 3
    other, _ = redact_conversation(conv, RedactConfig(secret="k2"))
    assert ph not in other.messages[0].content and "mia_li_3668" not in other.messages[0].content
    numbered, _ = redact_conversation(conv, RedactConfig(policies=(("USER_ID", "replace"),)))
    assert numbered.messages[0].content.startswith("My user id is <USER_ID_1>,")


def test_ner_reads_only_text_that_can_hold_a_name() -> None:
    from deploysim.privacy import ner

    assert ner.segments("Thanks! Another question: How do I reset my password?") == []
    assert ner.segments("Hi <PERSON_1>, order ORD-48213 shipped.") == []
    assert ner.segments("john had given shamhan his address") != []  # caseless text always goes to the model
    assert ner.caseless("i think I'm right and I’ll say so") and not ner.caseless("If it is, say so")
    assert ner.segments("Is it possible to download a car?") == []  # "Is" is no pronoun: normally-cased text
    # of cased text only the words near a possible name go to the model (its window is a few tokens)
    long = " ".join(f"w{i}" for i in range(40)) + " and so on. Then Maria Fernandez called. " + "x " * 30 + "end."
    [(off, piece)] = ner.segments(long)
    assert piece == "w36 w37 w38 w39 and so on. Then Maria Fernandez called." and long[off:].startswith(piece)
    assert ("PERSON", "Maria Fernandez") in {(s.type, s.value) for s in find_pii(long, ner=True)}
    text = "What's your last name? Krylova"
    assert ("PERSON", "Krylova") in {(s.type, s.value) for s in find_pii(text, ner=True)}
    payload = '{"order_id": "ORD-1", "status": "open", "notes": "Customer met Maria Fernandez in Chicago"}'
    assert [p for _, p in ner.segments(payload)] == ["Customer met Maria Fernandez in Chicago"]
    found = {(s.type, s.value, payload[s.start : s.end]) for s in find_pii(payload, ner=True)}
    assert ("PERSON", "Maria Fernandez", "Maria Fernandez") in found and ("LOCATION", "Chicago", "Chicago") in found


# ---------------------------------------------------------------------------- NER precision on requests


def test_ner_drops_lowercase_entities_only_in_cased_text() -> None:
    from deploysim.privacy import ner

    assert not ner.keep("methamphetamine", "LOCATION", in_caseless=False)
    assert ner.keep("methamphetamine", "LOCATION", in_caseless=True)  # caseless text: names are lowercase
    assert ner.keep("Maria Fernandez", "PERSON", in_caseless=False)
    assert ner.keep("de la Cruz", "PERSON", in_caseless=False)  # one capital is enough
    assert ner.keep("北京", "LOCATION", in_caseless=False)  # letters without case are not "lowercase"
    text = "How do I synthesize methamphetamine at home?"
    assert [s for s in find_pii(text, ner=True) if s.type in ("PERSON", "LOCATION", "ORGANIZATION")] == []
    caseless = "john had given shamhan his address"
    assert ("PERSON", "john") in {(s.type, s.value) for s in find_pii(caseless, ner=True)}


def test_ner_keeps_words_the_harm_rules_read() -> None:
    from deploysim.privacy import ner

    text = "how to synthesize meth in a home lab"  # caseless: the model's "meth" (GPE) survives keep()
    start = text.index("meth")
    assert ner.needed_by_rules(text, start, start + 4, "LOCATION")
    assert not ner.needed_by_rules("We met in Chicago to cook dinner", 10, 17, "LOCATION")
    assert (
        "meth"
        in redact_conversation(
            Conversation(conversation_id="m", messages=[Message(role="user", content=text)]), RedactConfig(ner=True)
        )[0]
        .messages[0]
        .content
    )


def _demo_requests() -> list[str]:
    base = [p for ps in demo.HARMFUL.values() for p in ps]
    base += [q for qs in demo.BENIGN.values() for q, _ in qs] + [q for _, q, _ in demo.LOOKALIKES]
    return [prefix + q for q in base for prefix in demo.FOLLOW_UPS]  # as demo.generate words them ("" = alone)


def test_ner_redaction_keeps_the_harm_category_of_demo_requests() -> None:
    from deploysim import rules

    requests = _demo_requests()
    convs = [
        Conversation(conversation_id=f"r{i}", messages=[Message(role="user", content=q)])
        for i, q in enumerate(requests)
    ]
    redacted, _ = redact_conversations(convs, RedactConfig(ner=True))
    changed = [
        (q, r.messages[0].content)
        for q, r in zip(requests, redacted)
        if rules.disallowed_category(q) != rules.disallowed_category(r.messages[0].content)
    ]
    assert changed == []
    for category, prompts in demo.HARMFUL.items():  # and the demo's labels still hold after redaction
        for q in prompts:
            out, _ = redact_conversation(
                Conversation(conversation_id="h", messages=[Message(role="user", content=q)]), RedactConfig(ner=True)
            )
            assert rules.disallowed_category(out.messages[0].content) == category, (q, out.messages[0].content)


def test_ner_redaction_keeps_the_harm_category_in_demo_logs(tmp_path: Path) -> None:
    """Whole generated conversations (names found in one message are replaced in all of them)."""
    from deploysim import rules

    paths = demo.generate(tmp_path / "raw", n=400, seed=3)
    convs = ingest_files([paths.logs]).conversations
    redacted, _ = redact_conversations(convs, RedactConfig(ner=True))
    assert len(redacted) == len(convs)
    n_harmful = 0
    for before, after in zip(convs, redacted):
        for m, r in zip(before.messages, after.messages):
            if m.role == "user":
                assert rules.disallowed_category(m.content) == rules.disallowed_category(r.content), (
                    m.content,
                    r.content,
                )
                n_harmful += rules.disallowed_category(m.content) is not None
    assert n_harmful > 10
