"""Traffic day by day (issue 13, item 4): logs partitioned by day, ingest and redact of only new or changed
days, the sample drawn over the last days with inclusion probabilities over that frame, and the days a
candidate's sample came from. Real parts: Dagster's in-process runs of the traffic job on an ephemeral
instance, the lake, the reference endpoint over HTTP, dbt."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from deploysim import days as dd
from deploysim import lake

DAYS = [f"2026-05-{d:02d}" for d in range(1, 11)]  # ten days of logs
PER_DAY = 40


def _write_day(logs: Path, day: str, tag: str = "") -> Path:
    """PER_DAY conversations of a day; the share asking for a refund grows with the day (day d: d/10), so
    the rate over the last 7 days (0.7) differs from the rate over all ten (0.55)."""
    d = int(day[-2:])
    path = logs / f"{day}.jsonl"
    with path.open("w") as f:
        for i in range(PER_DAY):
            refund = i < PER_DAY * d // 10
            text = f"I want a refund for order {i}{tag}" if refund else f"where is my parcel {i}{tag}"
            rec = {
                "id": f"{day}-{i}",
                "topic": ["billing", "shipping"][i % 2],
                "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "Let me check."}],
                "metadata": {"timestamp": f"{day}T{i % 24:02d}:30:00Z"},
            }
            f.write(json.dumps(rec) + "\n")
    return path


def _events(res) -> dict[str, set]:
    out: dict[str, set] = {}
    for e in res.get_asset_materialization_events():
        out.setdefault(e.asset_key.to_user_string(), set()).add(e.partition)
    return out


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    home = tmp_path_factory.mktemp("days")
    from deploysim_testkit.cli_home import isolated_env, restore_env

    old = isolated_env(home, DEPLOYSIM_SAMPLE_SIZE="100", DEPLOYSIM_REDACT_NER="0")
    import dagster as dg

    from deploysim import settings
    from orchestration import runner

    logs = home / "raw" / "logs"
    logs.mkdir(parents=True)
    for day in DAYS:
        _write_day(logs, day)
    inst = dg.DagsterInstance.ephemeral()
    s = settings.load()
    out: dict = {"home": home, "logs": logs, "inst": inst, "runner": runner, "settings": s}
    out["plan_1"] = runner.traffic_plan(inst, s)
    out["first"] = runner.run_traffic(inst, settings=s)
    out["sample_1"] = lake.latest_version("sample")
    out["versions_1"] = {d: lake.latest_day_version("redacted", d) for d in DAYS}
    out["again"] = runner.run_traffic(inst, settings=s)  # nothing changed
    out["sample_again"] = lake.latest_version("sample")
    _write_day(logs, "2026-05-11")  # a new day arrives
    out["plan_2"] = runner.traffic_plan(inst, s)
    out["new_day"] = runner.run_traffic(inst, settings=s)
    out["sample_2"] = lake.latest_version("sample")
    yield out
    restore_env(old)


def test_a_conversation_has_the_day_of_its_timestamp_else_of_its_file(tmp_path):
    assert dd.parse_day("2026-05-03T23:30:00-02:00") == "2026-05-04"  # UTC
    assert dd.parse_day("2026-05-03 10:00") == "2026-05-03"  # no zone: UTC
    assert dd.parse_day(1_778_000_000) == dd.parse_day(1_778_000_000_000) == "2026-05-05"  # seconds, milliseconds
    assert dd.parse_day("yesterday") is None and dd.parse_day(None) is None and dd.parse_day(True) is None
    assert dd.day_of({"created_at": "2026-05-02T01:00:00Z"}, "2026-01-01") == ("2026-05-02", True)
    f = tmp_path / "undated.jsonl"
    f.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    t = datetime(2026, 4, 30, 12, tzinfo=timezone.utc).timestamp()
    os.utime(f, (t, t))
    assert dd.day_of({}, dd.file_day(f)) == ("2026-04-30", False)
    assert dd.window("2026-05-02", 3) == ["2026-04-30", "2026-05-01", "2026-05-02"]
    assert dd.ranges(["2026-05-03", "2026-05-01", "2026-05-02", "2026-05-05"]) == [
        ("2026-05-01", "2026-05-03"),
        ("2026-05-05", "2026-05-05"),
    ]


def test_undated_records_are_counted_and_take_their_files_day(tmp_path, monkeypatch):
    from deploysim import pipeline

    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "old.jsonl"
    f.write_text(
        '{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\n'
        '{"id": "b", "messages": [{"role": "user", "content": "yo"}],'
        ' "metadata": {"timestamp": "2026-05-02T08:00:00Z"}}\n'
    )
    t = datetime(2026, 4, 30, 12, tzinfo=timezone.utc).timestamp()
    os.utime(f, (t, t))
    meta = pipeline.run_ingest(str(logs))
    assert meta["dated_by_file"] == 1
    assert {d: m["conversations"] for d, m in meta["days"].items()} == {"2026-04-30": 1, "2026-05-02": 1}


def test_the_first_run_materialises_every_day(traffic):
    assert traffic["plan_1"]["todo"] == DAYS
    res = traffic["first"]
    assert res.success, traffic["runner"].step_errors(res)
    ev = _events(res)
    assert ev["ingest"] == ev["redact"] == set(DAYS) and ev["sample"] == {None}
    # one range run, yet each day has its own version, recorded on its own materialisation
    versions = traffic["versions_1"]
    assert len(set(versions.values())) == len(DAYS)
    for e in res.get_asset_materialization_events():
        if e.asset_key.to_user_string() == "redact":
            meta = e.materialization.metadata
            assert meta["version"].value == versions[e.partition] and meta["conversations"].value == PER_DAY
            assert meta["path"].value == str(lake.day_version_path("redacted", e.partition, versions[e.partition]))


def test_an_unchanged_day_is_not_processed_again(traffic):
    res = traffic["again"]
    assert res.success
    ev = _events(res)
    assert "ingest" not in ev and "redact" not in ev  # only the sample (and the seeds) ran
    assert traffic["sample_again"] == traffic["sample_1"]  # same frame, size and seed: the same sample
    # re-running a day whose inputs did not change keeps its version (no new version directory)
    from deploysim import pipeline

    day = DAYS[2]
    before = sorted(p.name for p in lake.day_dir("redacted", day).glob("version=*"))
    meta = pipeline.run_redact(days=[day], settings=traffic["settings"])
    assert meta["reused"] and meta["days"][day]["version"] == traffic["versions_1"][day]
    assert sorted(p.name for p in lake.day_dir("redacted", day).glob("version=*")) == before


def test_a_new_day_is_the_only_one_processed(traffic):
    assert traffic["plan_2"]["todo"] == ["2026-05-11"]
    res = traffic["new_day"]
    assert res.success, traffic["runner"].step_errors(res)
    ev = _events(res)
    assert ev["ingest"] == ev["redact"] == {"2026-05-11"} and ev["sample"] == {None}
    assert {d: lake.latest_day_version("redacted", d) for d in DAYS} == traffic["versions_1"]
    # the window moved: the sample is new, over 05-05..05-11
    assert traffic["sample_2"] != traffic["sample_1"]
    assert lake.version_inputs("sample", None, traffic["sample_2"])["days"].keys() == set(dd.window("2026-05-11", 7))


def test_a_changed_log_file_reprocesses_its_day_only(traffic):
    runner, inst, s = traffic["runner"], traffic["inst"], traffic["settings"]
    _write_day(traffic["logs"], "2026-05-03", tag=" (corrected)")
    plan = runner.traffic_plan(inst, s)
    assert plan["todo"] == ["2026-05-03"]
    res = runner.run_traffic(inst, settings=s, days=plan["todo"])
    assert res.success and _events(res)["redact"] == {"2026-05-03"}
    assert lake.latest_day_version("redacted", "2026-05-03") != traffic["versions_1"]["2026-05-03"]
    assert runner.traffic_plan(inst, s)["todo"] == []


def test_the_sample_covers_the_last_seven_days_and_records_them(traffic):
    from assets.common import recorded

    v = traffic["sample_1"]
    ins = lake.version_inputs("sample", None, v)
    assert sorted(ins["days"]) == DAYS[-7:]  # 05-04..05-10
    assert ins["days"] == {d: traffic["versions_1"][d] for d in DAYS[-7:]}
    rows = lake.read_rows(lake.version_path("sample", None, v))
    assert {r["day"] for r in rows} <= set(DAYS[-7:]) and len(rows) == 100
    meta = lake.version_inputs("frame", None, ins["redacted"])
    assert meta["days"] == ins["days"]  # the frame the candidates read their conversations from
    now = recorded(traffic["inst"], "sample")
    assert now["days"] == dd.window("2026-05-11", 7) and "2026-05-05 to 2026-05-11" in now["window"]


def test_inclusion_probabilities_are_over_the_frame(traffic):
    """Weights 1/pi add up to the frame (7 days x 40), and the weighted refund rate estimates the frame's
    rate (0.7), not that of all ten days (0.55)."""
    from collections import defaultdict

    from deploysim import pipeline

    v = traffic["sample_1"]
    rows = lake.read_rows(lake.version_path("sample", None, v))
    frame = 7 * PER_DAY
    assert sum(1 / r["inclusion_prob"] for r in rows) == pytest.approx(frame)
    assert pipeline.sample_population(v) == frame
    ins = lake.version_inputs("sample", None, v)
    convs = {
        c.conversation_id: c for c in pipeline.load_redacted({r["conversation_id"] for r in rows}, ins["redacted"])
    }
    assert len(convs) == len(rows)
    by: dict[str, list] = defaultdict(list)
    for r in rows:
        by[r["stratum"]].append((r, "refund" in convs[r["conversation_id"]].messages[0].content))
    est = sum(sum(y for _, y in units) / len(units) * units[0][0]["population"] for units in by.values()) / frame
    var = 0.0
    for units in by.values():
        n, N = len(units), units[0][0]["population"]
        p = sum(y for _, y in units) / n
        s2 = p * (1 - p) * n / (n - 1) if n > 1 else 0.0
        var += (N / frame) ** 2 * (1 - n / N) * s2 / n
    half = 1.96 * math.sqrt(var)
    truth = sum(int(d[-2:]) / 10 for d in DAYS[-7:]) / 7
    assert truth == pytest.approx(0.7)
    assert est - half <= truth <= est + half
    assert not est - half <= 0.55 <= est + half


def test_a_candidate_records_the_days_of_its_sample(traffic):
    from assets.common import recorded
    from deploysim import pipeline
    from deploysim.candidates import Candidate, register
    from deploysim_testkit.endpoint import start_in_thread

    runner, inst, s = traffic["runner"], traffic["inst"], traffic["settings"]
    with start_in_thread() as server:
        register(Candidate(name="steady", base_url=server.base_url, model="steady"))
        res = runner.run_candidate(inst, "steady", settings=s)
    assert res.success or runner.run_outcome(res)["gate_built"], runner.step_errors(res)
    est = recorded(inst, "estimate", "steady")
    days = lake.version_inputs("sample", None, est["sample_version"])["days"]
    assert est["sample_days"] == f"{min(days)} to {max(days)} (7 days)" and len(days) == 7
    report = Path(recorded(inst, "report", "steady")["path"]).read_text()
    assert f"Sampled from the traffic of {min(days)} to {max(days)} (7 days)." in report
    assert (
        pipeline.replay_pins("steady")["redacted"]
        == lake.version_inputs("sample", None, est["sample_version"])["redacted"]
    )


def test_the_nightly_schedule_targets_the_day_that_ended():
    import dagster as dg

    from orchestration.definitions import defs

    sched = defs.resolve_schedule_def("nightly_traffic")
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 5, 12, 2, tzinfo=timezone.utc), repository_def=defs.get_repository_def()
    )
    reqs = list(sched.evaluate_tick(ctx).run_requests or [])
    assert [r.partition_key for r in reqs] == ["2026-05-11"]
