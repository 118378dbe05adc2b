"""The gate's three outcomes and its per-candidate checks (issue 14, items 1 and 2).

Real parts: demo logs, the reference endpoint over HTTP on 127.0.0.1, the CLI running Dagster's
materialize on a persistent instance, dbt on DuckDB.
"""

from __future__ import annotations

import pytest

from orchestration import cli

GATE = ("gate_failures", "has_no_rows_gate_failures_")
UNDECIDED = ("gate_undecided", "has_no_rows_gate_undecided_")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from deploysim_testkit.cli_home import small_home

    home = tmp_path_factory.mktemp("outcomes")
    with small_home(home) as server:
        for name in ("steady", "regressing"):
            assert cli.main(["candidate", "add", name, "--base-url", server.base_url, "--model", name]) == 0
        yield {"home": home}


def run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def check_status(asset: str, check: str, partition: str) -> str:
    """The latest evaluation of a check for one candidate partition, as the Dagster instance keeps it."""
    import dagster as dg

    from orchestration.runner import instance

    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    info = instance().event_log_storage.get_asset_check_partition_info([key], partition_keys=[partition])
    [row] = [i for i in info if i.partition_key == partition]
    return row.latest_execution_status.value


def gate_rows(name: str) -> list[dict]:
    from deploysim import pipeline, runs

    return pipeline.read_gate(name, runs.last(name)["run_id"])


def test_the_gate_check_is_per_candidate_whatever_the_order(env, capsys):
    code, out = run(capsys, "run", "regressing")
    assert code == cli.EXIT_BLOCKED, out
    code, out = run(capsys, "run", "steady", "--skip-traffic")
    assert code in (cli.EXIT_PASS, cli.EXIT_INCONCLUSIVE), out  # steady never fails; 60 conversations rarely decide
    for _ in range(2):  # regressing after steady, then steady after regressing: neither flips the other
        assert check_status(*GATE, "regressing") == "FAILED"
        assert check_status(*GATE, "steady") == "SUCCEEDED"
        # release_decision is written for a blocked candidate too, so its own checks run for it
        assert check_status("release_decision", "not_null_release_decision_decision", "regressing") == "SUCCEEDED"
        assert run(capsys, "run", "regressing", "--skip-traffic")[0] == cli.EXIT_BLOCKED
        assert check_status(*GATE, "steady") == "SUCCEEDED"
        assert run(capsys, "run", "steady", "--skip-traffic")[0] in (cli.EXIT_PASS, cli.EXIT_INCONCLUSIVE)


def latest_metadata(asset: str, partition: str | None) -> dict:
    """The metadata of an asset's latest materialisation (of this candidate where partitioned)."""
    import dagster as dg

    from orchestration.runner import instance

    flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    [rec] = instance().fetch_materializations(flt, limit=1).records
    return dict(rec.asset_materialization.metadata)


def test_the_console_shows_tables_a_verdict_and_row_counts(env, capsys):
    """What the Dagster UI shows of a blocked run (issue 14, item 4): tables, not JSON blobs; the verdict
    and its reasons as Markdown; percentages and dollars formatted; dbt assets with row counts."""
    import dagster as dg

    code, out = run(capsys, "run", "regressing")
    assert code == cli.EXIT_BLOCKED, out
    failed = [r["behaviour"] for r in gate_rows("regressing") if r["status"] == "fail"]
    assert failed

    decision = latest_metadata("release_decision", "regressing")
    assert decision["verdict"].value == "BLOCKED" and decision["failed"].value == len(failed)
    summary = decision["summary"]
    assert isinstance(summary, dg.MarkdownMetadataValue)
    assert summary.value.startswith("## regressing: BLOCKED") and "**Blocked by:**" in summary.value
    assert all(f"`{b}`" in summary.value for b in failed)  # each failing behaviour with its reason
    gate = decision["gate"]
    assert isinstance(gate, dg.TableMetadataValue) and len(gate.records) == len(gate_rows("regressing"))
    assert {c.name for c in gate.schema.columns} >= {"behaviour", "status", "rate", "ci", "max_rate", "reason"}
    assert all(r.data["rate"].endswith("%") for r in gate.records)
    assert decision["dagster/partition_row_count"].value == 1  # this run's decision row
    assert decision["dagster/row_count"].value >= 1

    estimate = latest_metadata("estimate", "regressing")
    table = estimate["estimates"]
    assert isinstance(table, dg.TableMetadataValue)
    assert {r.data["behaviour"] for r in table.records} == {r["behaviour"] for r in gate_rows("regressing")}
    assert all(r.data["rate"].endswith("%") and " to " in r.data["ci"] for r in table.records)
    assert not any(
        isinstance(v, dg.JsonMetadataValue) for k, v in estimate.items() if k not in ("settings", "upstream")
    )

    replay = latest_metadata("replay", "regressing")
    assert isinstance(replay["accounting"], dg.TableMetadataValue) and isinstance(
        replay["failures"], dg.TableMetadataValue
    )
    assert 0 < replay["completeness_pct"].value <= 100 and replay["cost"].value.startswith("$")
    grade = latest_metadata("grade", "regressing")
    assert isinstance(grade["behaviours"], dg.TableMetadataValue) and "flagged" not in grade

    report = latest_metadata("report", "regressing")
    assert report["summary"].value.startswith("## regressing: BLOCKED")
    assert isinstance(report["gate"], dg.TableMetadataValue)

    rows = latest_metadata("release_gate", "regressing")
    assert rows["dagster/partition_row_count"].value == len(gate_rows("regressing"))
    assert isinstance(rows["gate"], dg.TableMetadataValue)
    assert latest_metadata("gate_thresholds", None)["dagster/row_count"].value >= len(failed)
    summary_rows = latest_metadata("replay_summary", "regressing")["replay_summary"]
    assert any(
        r.data["candidate"] == "regressing" and r.data["completeness"].endswith("%") for r in summary_rows.records
    )


def test_a_small_sample_is_inconclusive_exit_3_with_the_conversations_needed(env, capsys):
    code, out = run(capsys, "run", "steady", "--skip-traffic", "--sample-size", "40")
    assert code == cli.EXIT_INCONCLUSIVE, out
    assert "INCONCLUSIVE" in out and "undecided, about" in out and "release_decision recorded: inconclusive" in out
    rows = gate_rows("steady")
    undecided = [r for r in rows if r["status"] == "inconclusive"]
    assert undecided and all(r["decided_by"] is None and r["reason"].startswith("undecided") for r in undecided)
    assert any(r["more_needed"] for r in undecided)
    for r in rows:
        if r["status"] == "pass":  # a pass is the interval wholly below the limit, never the point estimate
            assert r["ci_high"] < r["max_rate"] and r["decided_by"].startswith("rate: interval upper bound")
    assert check_status(*UNDECIDED, "steady") == "FAILED"  # the warning check (severity WARN)
    assert check_status(*GATE, "steady") == "SUCCEEDED"
    assert cli.main(["gate", "steady"]) == cli.EXIT_INCONCLUSIVE


def test_until_decisive_grows_the_sample_until_the_gate_decides(env, capsys):
    code, out = run(
        capsys, "run", "regressing", "--skip-traffic", "--sample-size", "10", "--until-decisive", "--budget", "240"
    )
    assert code == cli.EXIT_BLOCKED, out
    assert "round 1: a sample of 10 conversations" in out
    rows = gate_rows("regressing")
    look = rows[0]["look"]
    assert look >= 1 and all(r["look"] == look for r in rows)
    assert rows[0]["alpha"] == pytest.approx(0.025 * 6 / (3.141592653589793**2 * look * look))
    failed = [r for r in rows if r["status"] == "fail"]
    assert failed and all(r["decided_by"] for r in failed)
    assert f"({1 - 2 * rows[0]['alpha']:.1%} CI" in failed[0]["reason"]  # the round's wider interval


def test_until_decisive_stops_at_its_budget_and_says_so(env, capsys):
    code, out = run(
        capsys, "run", "steady", "--skip-traffic", "--sample-size", "20", "--until-decisive", "--budget", "50"
    )
    assert code == cli.EXIT_INCONCLUSIVE, out
    assert "round 2: a sample of 50 conversations" in out and "the budget is spent" in out


def test_budget_needs_until_decisive(env, capsys):
    code, out = run(capsys, "run", "steady", "--skip-traffic", "--budget", "100")
    assert code == cli.EXIT_ERROR and "--budget goes with --until-decisive" in out
    code, out = run(
        capsys, "run", "steady", "--skip-traffic", "--sample-size", "500", "--until-decisive", "--budget", "100"
    )
    assert code == cli.EXIT_ERROR and "below the first round's sample" in out
