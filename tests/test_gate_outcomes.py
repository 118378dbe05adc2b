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
