"""Agentic rollouts on real tau-bench airline trajectories (gpt-4o, real tool schemas) against the
reference endpoint: tool results answered from the recording, by a simulator model, or with an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from deploysim.candidates import Candidate
from deploysim.logs.ingest import parse_record
from deploysim.replay.accounting import summarize
from deploysim.replay.engine import ReplayOptions, replay
from deploysim.replay.toolsim import UNAVAILABLE, canonical_args
from deploysim.schemas import Conversation
from deploysim_testkit.endpoint import PROFILES, start_in_thread

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tau-bench-airline"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"tau-bench data not found at {DATA}")

AGENT = PROFILES["steady"].model_copy(update={"name": "agent", "tool_style": "recheck"})
MISBEHAVING = AGENT.model_copy(update={"name": "misbehaving", "tool_wrong_args": 0.5, "tool_destructive": 0.5})
SIMULATOR = PROFILES["steady"].model_copy(update={"name": "simulator", "kind": "tool_simulator"})
BROKEN_SIM = SIMULATOR.model_copy(update={"name": "broken-sim", "rate_500": 1.0, "fault_mode": "independent"})


def load(n: int = 30) -> list[Conversation]:
    tools = json.loads((DATA / "airline_tools.json").read_text())
    out = []
    with (DATA / "gpt-4o-airline_trajectories_trials0-1.jsonl").open() as f:
        for line in f:
            r = json.loads(line)
            rec = {"id": f"tau-{r['task_id']}-{r['trial']}", "messages": r["traj"], "tools": tools}
            out.append(parse_record(json.dumps(rec)))  # through the real ingest parser
            if len(out) == n:
                break
    return out


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with start_in_thread(profiles={p.name: p for p in [AGENT, MISBEHAVING, SIMULATOR, BROKEN_SIM]}) as s:
        yield s


@pytest.fixture(scope="module")
def convs() -> list[Conversation]:
    return load()


def cand(server: Any, model: str) -> Candidate:
    return Candidate(name=model, base_url=server.base_url, model=model, concurrency=8, max_retries=1)


def recorded_results(conv: Conversation) -> dict[tuple[str, str], set[str]]:
    """Every result the recording gave each (name, arguments); a result answers the latest call with its id."""
    out: dict[tuple[str, str], set[str]] = {}
    pending = {}
    for m in conv.messages:
        pending.update({c.id: c for c in m.tool_calls})
        if m.role == "tool" and m.tool_call_id in pending:
            c = pending.pop(m.tool_call_id)
            out.setdefault((c.name, json.dumps(canonical_args(c.arguments), sort_keys=True)), set()).add(m.content)
    return out


def test_faithful_agent_gets_recorded_results(server: Any, convs: list[Conversation], tmp_path: Path) -> None:
    recs = replay(convs, cand(server, "agent"), tmp_path / "c.sqlite", options=ReplayOptions(mode="every"))
    assert all(r.status == "ok" for r in recs), [r.error for r in recs if r.error]
    results = [t for r in recs for t in r.tool_results]
    assert len(results) >= 20
    assert {t.source for t in results} == {"recorded"}
    by_id = {c.conversation_id: c for c in convs}
    for r in recs:
        rec = recorded_results(by_id[r.conversation_id])
        for t in r.tool_results:
            assert t.content in rec[(t.name, json.dumps(canonical_args(t.arguments), sort_keys=True))]


def test_misbehaving_agent_results_are_simulated_with_provenance(
    server: Any, convs: list[Conversation], tmp_path: Path
) -> None:
    opts = ReplayOptions(mode="every", tool_simulator=cand(server, "simulator"))
    recs = replay(convs, cand(server, "misbehaving"), tmp_path / "c.sqlite", options=opts)
    assert all(r.status == "ok" for r in recs), [r.error for r in recs if r.error]
    results = [t for r in recs for t in r.tool_results]
    sources = summarize(recs)["tool_results"]
    assert sources.get("recorded", 0) > 0 and sources.get("simulated", 0) > 0, sources
    tool_names = {t["function"]["name"] for t in convs[0].tools}
    destructive = [
        t
        for t in results
        if t.name
        in {
            "cancel_reservation",
            "update_reservation_flights",
            "update_reservation_passengers",
            "update_reservation_baggages",
            "book_reservation",
            "send_certificate",
            "transfer_to_human_agents",
        }
    ]
    assert destructive, "the profile adds unrequested destructive calls"
    assert all(t.name in tool_names for t in results)
    for t in results:
        if t.source == "simulated":
            assert t.content and t.content != UNAVAILABLE and t.detail is None
    # Every tool message in the turn is the recorded result for its call, in order.
    for r in recs:
        tool_msgs = [m for m in r.turn if m.role == "tool"]
        assert [(m.tool_call_id, m.content) for m in tool_msgs] == [(t.tool_call_id, t.content) for t in r.tool_results]


def test_simulator_failure_gives_deterministic_error_result(
    server: Any, convs: list[Conversation], tmp_path: Path
) -> None:
    opts = ReplayOptions(mode="every", tool_simulator=cand(server, "broken-sim"))
    recs = replay(convs[:10], cand(server, "misbehaving"), tmp_path / "c.sqlite", options=opts)
    errors = [t for r in recs for t in r.tool_results if t.source == "error"]
    assert errors and all(t.content == UNAVAILABLE for t in errors)
    assert all(t.detail == "tool simulator failed: HTTP 500 after 2 attempts" for t in errors)
    without = replay(
        convs[:10], cand(server, "misbehaving"), tmp_path / "c2.sqlite", options=ReplayOptions(mode="every")
    )
    assert {t.source for r in without for t in r.tool_results} == {"recorded", "unavailable"}


def test_step_limit_bounds_each_rollout(server: Any, convs: list[Conversation], tmp_path: Path) -> None:
    recs = replay(
        convs[:10], cand(server, "agent"), tmp_path / "c.sqlite", options=ReplayOptions(mode="every", max_steps=1)
    )
    limited = [r for r in recs if r.status == "error"]
    assert limited and all(r.error == "step limit (1) reached" and len(r.tool_results) >= 1 for r in limited)
    assert all(len([m for m in r.turn if m.role == "assistant"]) <= 1 for r in recs)
