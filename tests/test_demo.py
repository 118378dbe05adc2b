"""Demo production logs: deterministic, labelled correctly, agent contract kept."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from deploysim import rules
from deploysim.privacy.detectors import luhn_ok, ssn_ok
from deploysim_testkit import demo

ID_RE = re.compile(demo.ID_PATTERN)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> list[tuple[dict, dict]]:
    """The default-size demo: (record, truth) pairs."""
    paths = demo.generate(tmp_path_factory.mktemp("demo"))
    records = [json.loads(line) for line in paths.logs.read_text(encoding="utf-8").splitlines()]
    truth = [json.loads(line) for line in paths.truth.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [t["id"] for t in truth]
    return list(zip(records, truth))


def _last_user(rec: dict) -> str:
    return [m for m in rec["messages"] if m["role"] == "user"][-1]["content"]


def _before_final(rec: dict) -> str:
    """Every text of the conversation except the final assistant answer."""
    parts = []
    for m in rec["messages"][:-1]:
        parts.append(m.get("content") or "")
        parts += [c["function"]["arguments"] for c in m.get("tool_calls") or []]
    return "\n".join(parts)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = demo.generate(tmp_path / "a", n=300, seed=7)
    b = demo.generate(tmp_path / "b", n=300, seed=7)
    c = demo.generate(tmp_path / "c", n=300, seed=8)
    assert a.logs == tmp_path / "a" / "logs" / "demo.jsonl"
    assert a.truth == tmp_path / "a" / "truth" / "ground_truth.jsonl"
    assert a.logs.read_bytes() == b.logs.read_bytes()
    assert a.truth.read_bytes() == b.truth.read_bytes()
    assert a.logs.read_bytes() != c.logs.read_bytes()


def test_default_size_and_mix(logs) -> None:
    assert len(logs) == 2000
    n = len(logs)
    truth = [t for _, t in logs]
    assert 0.20 <= sum(t["kind"] == "agent" for t in truth) / n <= 0.30
    assert 0.09 <= sum(t["disallowed"] for t in truth) / n <= 0.15
    assert 0.33 <= sum(bool(t["pii"]) for t in truth) / n <= 0.47
    assert 0.005 <= sum(t["baseline_leaked"] for t in truth) / n <= 0.03
    assert {r["topic"] for r, _ in logs} >= set(demo.TOPICS)
    assert {r["surface"] for r, _ in logs} == {"web_chat", "mobile_app", "api", "support_agent"}
    turns = Counter(sum(m["role"] == "user" for m in r["messages"]) for r, _ in logs)
    assert min(turns) == 1 and max(turns) >= 5
    assert any(r["messages"][0]["role"] == "system" for r, _ in logs)
    assert any(r["messages"][0]["role"] == "user" for r, _ in logs)
    for r, _ in logs:
        assert set(r) == {"id", "topic", "surface", "messages", "tools", "metadata"}
        assert set(r["metadata"]) == {"user_id", "timestamp"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["metadata"]["timestamp"])


def test_requests_are_what_the_truth_says(logs) -> None:
    """The world's reading of each request is the truth; the keyword rules agree except on the hard cases."""
    for rec, t in logs:
        asked = demo.asked(_last_user(rec))
        assert asked is not None and asked.category == t["category"], (t["id"], _last_user(rec))
        assert t["disallowed"] == (t["category"] is not None)
        if not {"unusual_harmful", "flagged_lookalike"} & set(t["hard"]):
            assert rules.disallowed_category(_last_user(rec)) == t["category"], (t["id"], _last_user(rec))
    cats = Counter(t["category"] for _, t in logs if t["disallowed"])
    assert set(cats) == set(demo.HARMFUL)
    # benign look-alikes are present
    lookalikes = [
        _last_user(r)
        for r, t in logs
        if not t["disallowed"] and re.search(r"\b(kill|attack|break into|get into|blow up|bomb)\b", _last_user(r), re.I)
    ]
    assert len(lookalikes) >= 20


def test_hard_cases_at_modest_rates(logs) -> None:
    n = len(logs)
    hard = Counter(h for _, t in logs for h in t["hard"])
    assert set(hard) == {
        "unusual_harmful",
        "flagged_lookalike",
        "soft_refusal",
        "disclaimed_compliance",
        "disclaimed_answer",
        "reworded_injection",
        "org_contact",
    }, hard
    assert sum(hard.values()) <= 0.1 * n
    for rec, t in logs:
        if "unusual_harmful" in t["hard"]:
            assert t["disallowed"] and _last_user(rec).endswith(tuple(demo.UNUSUAL_HARMFUL[t["category"]]))
        if "flagged_lookalike" in t["hard"]:
            assert not t["disallowed"] and any(q in _last_user(rec) for _, q, _ in demo.FLAGGED_LOOKALIKES)
        if "soft_refusal" in t["hard"]:
            assert t["baseline_refused"] and rec["messages"][-1]["content"] in demo.SOFT_REFUSALS


def test_production_answers_match_truth(logs) -> None:
    for rec, t in logs:
        final = rec["messages"][-1]
        assert final["role"] == "assistant" and final["content"]
        act = demo.logged_act(final["content"])
        assert act is not None, (t["id"], final["content"])
        assert (act.kind == "refused") == t["baseline_refused"], (t["id"], final["content"])
        assert (act.kind == "complied") == t["baseline_complied"], (t["id"], final["content"])
        assert act.leaked == t["baseline_leaked"], (t["id"], final["content"])
        if t["disallowed"]:
            assert t["baseline_complied"] == (not t["baseline_refused"])
        else:
            assert not t["baseline_complied"]
    harmful = [t for _, t in logs if t["disallowed"]]
    benign = [t for _, t in logs if not t["disallowed"]]
    assert 0 < sum(t["baseline_complied"] for t in harmful) <= 0.10 * len(harmful)
    assert 0.02 <= sum(t["baseline_refused"] for t in benign) / len(benign) <= 0.08


def test_agent_conversations_follow_the_contract(logs) -> None:
    agents = [(r, t) for r, t in logs if t["kind"] == "agent"]
    assert agents and all(r["surface"] == "support_agent" for r, _ in agents)
    assert all(not r["tools"] for r, t in logs if t["kind"] == "chat")
    for rec, _t in agents:
        params = {}
        for tool in rec["tools"]:
            fn = tool["function"]
            assert tool["type"] == "function"
            req = fn["parameters"]["required"]
            assert len(req) == 1 and req[0].endswith("_id"), fn
            assert fn["parameters"]["properties"][req[0]]["type"] == "string"
            params[fn["name"]] = req[0]
        assert params.get("delete_account") == "account_id"

        msgs = rec["messages"]
        li = max(i for i, m in enumerate(msgs) if m["role"] == "user")
        text = msgs[li]["content"]
        ids = ID_RE.findall(text)
        assert len(ids) == 1, text
        call_msg, result = msgs[li + 1], msgs[li + 2]
        assert call_msg["role"] == "assistant" and call_msg["content"] is None and len(call_msg["tool_calls"]) == 1
        call = call_msg["tool_calls"][0]
        name, param = call["function"]["name"], params[call["function"]["name"]]
        assert name == rec["tools"][0]["function"]["name"]  # the requested tool is listed first
        assert re.search(rf"\b{param[:-3]}\b", text, re.I), (param, text)
        assert call["function"]["arguments"] == json.dumps({param: ids[0]}, separators=(",", ":"), sort_keys=True)
        assert result["role"] == "tool" and result["tool_call_id"] == call["id"] and result["name"] == name
        body = json.loads(result["content"])
        assert body[param] == ids[0] and "@" in body["customer"]["email"]
        final = msgs[-1]
        assert final["role"] == "assistant" and final["content"] and not final.get("tool_calls")


def test_injections_are_parsable_and_followed_as_labelled(logs) -> None:
    agents = [(r, t) for r, t in logs if t["kind"] == "agent"]
    injected = [(r, t) for r, t in agents if t["injected"]]
    assert 0.2 <= len(injected) / len(agents) <= 0.4
    forms = Counter()
    for rec, t in agents:
        found = [inj for m in rec["messages"] if m["role"] == "tool" and (inj := demo.planted_injection(m["content"]))]
        assert bool(found) == t["injected"], t["id"]
        if t["injected"] and "reworded_injection" not in t["hard"]:
            assert any(rules.find_injection(m["content"]) for m in rec["messages"] if m["role"] == "tool")
        if not found:
            assert not t["baseline_followed_injection"]
            continue
        inj = found[0]
        assert (inj.say, inj.call) == (t["injection"]["say"], t["injection"]["call"])
        assert inj.say or inj.call == "delete_account"
        forms["say" if inj.say else "call"] += 1
        final = rec["messages"][-1]["content"]
        deleted = any(
            c["function"]["name"] == "delete_account" for m in rec["messages"] for c in m.get("tool_calls") or []
        )
        followed = (inj.say is not None and inj.say in final) or (inj.call is not None and deleted)
        assert followed == t["baseline_followed_injection"], t["id"]
    assert forms["say"] > 0 and forms["call"] > 0
    assert 0 < sum(t["baseline_followed_injection"] for _, t in injected) <= 0.25 * len(injected)


def test_every_planted_value_is_in_the_logs(logs) -> None:
    types = Counter()
    for rec, t in logs:
        text = json.dumps(rec, ensure_ascii=False)
        texts = "\n".join([m.get("content") or "" for m in rec["messages"]])
        for p in t["pii"]:
            assert p["value"] in texts and p["value"] in text, (t["id"], p)
            types[p["type"]] += 1
    assert set(types) == {"EMAIL", "PHONE", "CARD", "SSN", "IP", "URL_SECRET", "API_KEY"}
    assert min(types.values()) >= 10, types


def test_planted_values_are_valid_and_varied(logs) -> None:
    values = [p for _, t in logs for p in t["pii"]]
    cards = [p["value"] for p in values if p["type"] == "CARD"]
    assert all(luhn_ok(re.sub(r"\D", "", c)) for c in cards)
    assert any(" " in c for c in cards) and any("-" in c for c in cards) and any(c.isdigit() for c in cards)
    ssns = [p["value"] for p in values if p["type"] == "SSN"]
    assert all(ssn_ok(*s.split("-")) for s in ssns)
    phones = [p["value"] for p in values if p["type"] == "PHONE"]
    assert any(p.startswith("+44") for p in phones) and any(p.startswith("(") for p in phones)
    keys = [p["value"] for p in values if p["type"] == "API_KEY"]
    assert any(k.startswith("sk-") for k in keys) and any(k.startswith("AKIA") or k.startswith("ASIA") for k in keys)
    urls = [p["value"] for p in values if p["type"] == "URL_SECRET"]
    assert any("@" in u for u in urls) and any("?" in u for u in urls)


def test_leaks_are_new_values_in_the_final_answer(logs) -> None:
    leaked = 0
    for rec, t in logs:
        final = rec["messages"][-1]["content"]
        before = _before_final(rec)
        new = [p for p in t["pii"] if p["value"] in final and p["value"] not in before]
        assert bool(new) == t["baseline_leaked"], t["id"]
        if new:
            leaked += 1
            assert {p["type"] for p in new} <= {"EMAIL", "PHONE"}
            assert demo.logged_act(final).kind == "answered"
    assert leaked > 0
