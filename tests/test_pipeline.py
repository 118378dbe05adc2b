"""The whole simulation through Dagster's materialize, on demo logs and the reference endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from deploysim import lake


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Demo logs (default size), the endpoint over HTTP, two candidates, the full pipeline with the
    judge graders (a judge profile of the same endpoint) and the demo's stand-in reviewers; then steady
    is released, its production logs arrive and its forecast is scored."""
    home = tmp_path_factory.mktemp("home")
    old = dict(os.environ)
    os.environ["DEPLOYSIM_HOME"] = str(home)
    os.environ["DEPLOYSIM_LOGS"] = str(home / "raw" / "logs")
    import dagster as dg

    from deploysim.candidates import Candidate, register
    from deploysim_testkit import demo
    from deploysim_testkit.endpoint import start_in_thread
    from orchestration import runner

    paths = demo.generate(home / "raw", n=2000, seed=7)
    inst = dg.DagsterInstance.ephemeral()
    with start_in_thread() as server:
        os.environ.update(
            DEPLOYSIM_JUDGE_MODEL="judge-accurate",
            DEPLOYSIM_JUDGE_BASE_URL=server.base_url,
            DEPLOYSIM_LABELS="demo-review:200",
        )
        cands = {
            name: Candidate(
                name=name,
                base_url=server.base_url,
                model=name,
                price_prompt_per_mtok=0.15,
                price_completion_per_mtok=0.60,
                tool_simulator_model="tool-simulator",
            )
            for name in ("steady", "regressing")
        }
        for c in cands.values():
            register(c)
        traffic = runner.run_traffic(inst)
        results = {name: runner.run_candidate(inst, name) for name in ("steady", "regressing")}
        before_release = runner.run_scorecard(inst, "steady")  # no production logs yet
        observed_before = (home / "lake" / "observed").exists()
        after = demo.production_after_release(
            cands["steady"], home / "raw" / "observed" / "candidate=steady" / "p.jsonl", n=2000, seed=8
        )
        scored = runner.run_scorecard(inst, "steady")
        yield {
            "home": home,
            "truth": paths.truth,
            "server": server,
            "inst": inst,
            "traffic": traffic,
            "results": results,
            "runner": runner,
            "before_release": before_release,
            "scored": scored,
            "after": after,
            "observed_before": observed_before,
        }
    os.environ.clear()
    os.environ.update(old)


def gate(name: str) -> dict[str, dict]:
    from deploysim import pipeline

    return {r["behaviour"]: r for r in pipeline.read_gate(name)}


def test_traffic_materialises(sim):
    assert sim["traffic"].success
    done = sim["runner"].materialized(sim["traffic"])
    assert {"ingest", "redact", "sample", "gate_thresholds"} <= done


def test_steady_is_not_blocked_and_its_decision_is_recorded(sim):
    res, runner = sim["results"]["steady"], sim["runner"]
    from deploysim.grading import taxonomy

    tax = taxonomy.load()
    rows = gate("steady")
    statuses = {b: r["status"] for b, r in rows.items()}
    assert set(statuses) == {b.id for b in tax.behaviours}  # every behaviour of the default taxonomy is graded
    gated = [b.id for b in tax.behaviours if b.gate]
    assert {statuses[b] for b in gated} <= {"pass", "inconclusive"} and "pass" in {statuses[b] for b in gated}
    assert {statuses[b.id] for b in tax.behaviours if not b.gate} == {"no_threshold"}  # reported, not gated
    for b in gated:  # a pass is the whole interval below the limit; undecided says what would decide it
        r = rows[b]
        if r["status"] == "pass":
            assert r["ci_high"] < r["max_rate"], r
        else:
            assert r["ci_low"] <= r["max_rate"] <= r["ci_high"] and r["more_needed"] and "undecided" in r["reason"]
    assert "release_decision" in runner.materialized(res)
    undecided = "inconclusive" in statuses.values()
    assert runner.failed_checks(res) == ([runner.UNDECIDED_CHECK] if undecided else [])
    with duckdb.connect(str(sim["home"] / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select decision from release_decision where candidate='steady'").fetchall() == [
            ("inconclusive" if undecided else "pass",)
        ]


def test_regressing_is_blocked_and_its_decision_is_recorded(sim):
    res, runner = sim["results"]["regressing"], sim["runner"]
    rows = gate("regressing")
    failing = {b for b, r in rows.items() if r["status"] == "fail"}
    assert {"harmful_compliance", "injection_following"} <= failing
    # worse-than-baseline is Holm-adjusted across the gated behaviours (steps 1..m, one family)
    steps = sorted(r["holm_step"] for r in rows.values() if r["holm_step"] is not None)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10
    assert any("significant after Holm" in r["reason"] for r in rows.values() if r["status"] == "fail")
    assert all(r["decided_by"] for r in rows.values() if r["status"] == "fail")
    done = runner.materialized(res)
    assert {"release_gate", "release_decision", "report"} <= done  # a blocked candidate: its decision and report
    assert runner.GATE_CHECK in runner.failed_checks(res)
    with duckdb.connect(str(sim["home"] / "warehouse.duckdb"), read_only=True) as con:
        got = con.execute("select decision, n_failed from release_decision where candidate='regressing'").fetchall()
    assert got == [("fail", len(failing))]


def test_configured_rates_inside_intervals(sim):
    """The endpoint's configured rates lie inside the estimates' intervals.

    Eight 95% intervals (2 candidates x 4 behaviours) all cover only about 66% of the time, so the
    claim is checked family-wise: Bonferroni over the eight, the same Wilson interval at the same
    effective size. benchmarks/coverage.py measures the per-interval coverage over many seeds.
    """
    from statistics import NormalDist

    from deploysim.estimation.stats import wilson
    from deploysim_testkit.endpoint import PROFILES

    z = NormalDist().inv_cdf(1 - 0.05 / 2 / 8)
    misses, checked = [], 0
    configured = {"harmful_compliance", "over_refusal", "pii_leakage", "injection_following"}  # the profiles' rates
    for name in ("steady", "regressing"):
        for e in lake.read_rows(lake.current("estimate", name)):
            if e["behaviour"] not in configured:
                continue
            truth = getattr(PROFILES[name], e["behaviour"])
            lo, hi = wilson(e["rate"] * e["n_eff"], e["n_eff"], z)
            assert lo <= e["ci_low"] and e["ci_high"] <= hi  # the family-wise interval contains the 95% one
            assert lo <= truth <= hi, (name, e["behaviour"], truth, lo, hi)
            misses += [] if e["ci_low"] <= truth <= e["ci_high"] else [(name, e["behaviour"])]
            checked += 1
    assert checked == 8
    assert len(misses) <= 2, misses  # P(3+ misses of eight 95% intervals) is about 0.6%


def test_report_written_for_both(sim):
    from deploysim import pipeline

    steady = pipeline.report_path("steady").read_text()
    regressing = pipeline.report_path("regressing").read_text()
    undecided = any(r["status"] == "inconclusive" for r in gate("steady").values())
    assert f'id="verdict">{"INCONCLUSIVE" if undecided else "PASSED"}' in steady
    assert 'id="verdict">BLOCKED' in regressing
    assert "<svg" in regressing and "harmful_compliance" in regressing


def _all_text_downstream_of_redact(home: Path) -> str:
    parts = []
    for p in sorted((home / "lake").rglob("*.parquet")):
        parts += list(lake.iter_parquet_text(p))
    for p in sorted((home / "reports").rglob("*")):
        if p.is_file():
            parts.append(p.read_text())
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for (table,) in con.execute("select table_name from information_schema.tables").fetchall():
            for row in con.execute(f'select * from "{table}"').fetchall():
                parts += [str(v) for v in row if isinstance(v, str)]
    return "\n".join(parts)


def test_no_planted_pii_downstream_of_redact(sim):
    text = _all_text_downstream_of_redact(sim["home"])
    assert len(text) > 100_000  # the scan really read the outputs
    values = {p["value"] for line in sim["truth"].read_text().splitlines() for p in json.loads(line)["pii"]}
    assert len(values) > 100
    leaked = sorted(v for v in values if v in text)
    assert leaked == []


def test_rerun_makes_no_http_calls(sim):
    server, runner = sim["server"], sim["runner"]
    before = server.stats_total() if hasattr(server, "stats_total") else sum(server.stats.values())
    res = runner.run_candidate(sim["inst"], "steady")
    after = server.stats_total() if hasattr(server, "stats_total") else sum(server.stats.values())
    assert res.success
    assert after == before
    # the same inputs give the same replay version: its directory is kept as written, and the rerun's
    # own accounting (in its metadata) says every answer came from the cache
    meta = res.asset_materializations_for_node("replay")[0].metadata
    assert meta["http_calls"].value == 0 and meta["cached_answers"].value >= meta["replayed"].value


def test_cli_gate_exit_codes(sim, capsys):
    from orchestration import cli

    undecided = any(r["status"] == "inconclusive" for r in gate("steady").values())
    assert cli.main(["gate", "steady"]) == (cli.EXIT_INCONCLUSIVE if undecided else cli.EXIT_PASS)
    assert cli.main(["gate", "regressing"]) == cli.EXIT_BLOCKED
    out = capsys.readouterr().out
    assert "harmful_compliance" in out and "FAIL" in out
    assert cli.main(["gate", "nobody"]) == cli.EXIT_ERROR


def test_sensor_requests_runs_for_new_candidates(sim):
    import dagster as dg

    from orchestration.sensors import new_candidates

    ctx = dg.build_sensor_context(instance=sim["inst"], cursor=json.dumps(["steady"]))
    res = new_candidates(ctx)
    assert [r.partition_key for r in res.run_requests] == ["regressing"]
    again = new_candidates(dg.build_sensor_context(instance=sim["inst"], cursor=res.cursor))
    assert again.run_requests == []


def test_judge_graders_and_calibration_in_the_pipeline(sim):
    """judge.* graders run beside the rules; the stand-in reviewers' labels give a calibration table that
    recovers the judge profile's configured accuracy, and PPI++ rates beside the uncorrected ones."""
    from deploysim import pipeline
    from deploysim.grading import calibration
    from deploysim_testkit.judge_profiles import JUDGE_PROFILES

    grades = lake.read_rows(lake.current("grade", "regressing"))
    judged = [g for g in grades if g["grader"].startswith("judge.")]
    assert {g["grader"] for g in judged} >= {"judge.harmful_compliance", "judge.over_refusal", "judge.pii_leakage"}
    assert sum(g["applicable"] for g in judged) > 1000
    labels = lake.read_rows(pipeline.labels_path("regressing"))
    assert len({r["conversation_id"] for r in labels}) == 200
    table = calibration.calibration_table(grades, labels, "regressing")
    tp = sum(r.agreement.tp for r in table if r.grader.startswith("judge."))
    fn = sum(r.agreement.fn for r in table if r.grader.startswith("judge."))
    tn = sum(r.agreement.tn for r in table if r.grader.startswith("judge."))
    fp = sum(r.agreement.fp for r in table if r.grader.startswith("judge."))
    prof = JUDGE_PROFILES["judge-accurate"]
    assert tp + fn >= 40 and abs(tp / (tp + fn) - prof.sensitivity) < 0.1, (tp, fn)
    assert abs(tn / (tn + fp) - prof.specificity) < 0.03, (tn, fp)
    ests = {e["behaviour"]: e for e in lake.read_rows(lake.current("estimate", "regressing"))}
    assert ests["over_refusal"]["n_labelled"] > 100 and ests["over_refusal"]["ppi_rate"] is not None
    page = pipeline.report_path("regressing").read_text()
    assert 'id="calibration"' in page and "judge.over_refusal" in page and 'id="ppi"' in page


def test_forecast_scorecard_after_release(sim):
    from deploysim.estimation import scorecard

    runner = sim["runner"]
    assert sim["before_release"].success and not sim["observed_before"]
    res = sim["scored"]
    assert res.success and runner.failed_checks(res) == [], runner.step_errors(res)
    assert {"observed", "scorecard", "scorecard_summary", "report"} <= runner.materialized(res)
    assert sim["after"] > 1900
    rows, s = scorecard.load("steady")
    with duckdb.connect(str(sim["home"] / "warehouse.duckdb"), read_only=True) as con:
        mart = dict(
            con.execute("select behaviour, multiplicative_error from scorecard where candidate='steady'").fetchall()
        )
        summ = con.execute(
            "select median_multiplicative_error, direction_accuracy_moved from scorecard_summary "
            "where candidate='steady'"
        ).fetchone()
    assert mart == pytest.approx({r["behaviour"]: r["multiplicative_error"] for r in rows})  # kept as computed
    assert summ == pytest.approx((s["median_multiplicative_error"], s["direction_accuracy_moved"]))
    assert s["share_within_10x"] == 1.0 and s["direction_accuracy_moved"] >= 0.75
    from deploysim import pipeline

    assert 'id="scorecard"' in pipeline.report_path("steady").read_text()


def test_replay_accounts_tokens_cost_and_tool_result_sources(sim):
    """The candidate's prices give the replay's cost; unrecorded tool calls went to the tool simulator."""
    from deploysim import pipeline

    cost = pipeline.replay_cost("steady")
    assert cost["prompt_tokens"] > 10_000 and cost["completion_tokens"] > 1_000
    assert cost["cost_usd"] == pytest.approx((cost["prompt_tokens"] * 0.15 + cost["completion_tokens"] * 0.60) / 1e6)
    sources = {}
    for r in lake.read_rows(lake.current("replay", "regressing")):
        for t in json.loads(r["tool_results"]):
            sources[t["source"]] = sources.get(t["source"], 0) + 1
    assert sources.get("recorded", 0) > 0 and "unavailable" not in sources, sources
    assert f"${cost['cost_usd']:,.4f}" in (pipeline.report_path("steady").parent / "summary.md").read_text()
