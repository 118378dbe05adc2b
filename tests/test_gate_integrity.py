"""A gate that cannot lie (issue 15): a run that did not evaluate the candidate never passes.

Real parts throughout: demo logs, the reference endpoint over HTTP on 127.0.0.1, Dagster's
materialize on a persistent instance, dbt on DuckDB, and the CLI (in-process, or as a
subprocess where a signal or a kill is involved).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from deploysim_testkit.cli_home import small_home
    from deploysim_testkit.endpoint import PROFILES

    home = tmp_path_factory.mktemp("gate")
    slow = {**PROFILES, "slow": PROFILES["steady"].model_copy(update={"name": "slow", "latency_ms": 700.0})}
    with small_home(home, profiles=slow, DEPLOYSIM_PURGE_RAW="false", DEPLOYSIM_MIN_COMPLETENESS_PCT="95") as server:
        yield {"home": home, "url": server.base_url}


def add(name: str, url: str, *extra: str) -> None:
    assert (
        cli.main(["candidate", "add", name, "--base-url", url, "--model", extra[0] if extra else "steady", *extra[1:]])
        == cli.EXIT_PASS
    )


def run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().out


NOT_BLOCKED = (cli.EXIT_PASS, cli.EXIT_INCONCLUSIVE)


def no_gate_table(out: str) -> bool:
    return "95% CI" not in out and " PASS" not in out


def test_a_candidate_that_passed_then_lost_its_key_exits_2_without_the_old_gate(env, capsys):
    target = ROOT / "dbt" / "target"
    before = set(target.iterdir()) if target.exists() else set()
    add("steady", env["url"])
    code, out = run(capsys, "run", "steady")
    assert code in NOT_BLOCKED, out  # 60 conversations may leave a behaviour undecided (exit 3)
    assert "PASS" in out
    # dbt's per-run folders go to the data directory, not the checkout (it grew ~3 MB a run)
    assert (set(target.iterdir()) if target.exists() else set()) == before
    assert (env["home"] / "dbt-target" / "dbt_candidate_marts-steady" / "run_results.json").exists()
    add("steady", env["url"], "steady", "--api-key-env", "DEPLOYSIM_TEST_UNSET_KEY")
    os.environ.pop("DEPLOYSIM_TEST_UNSET_KEY", None)
    code, out = run(capsys, "run", "steady", "--skip-traffic")
    assert code == cli.EXIT_ERROR, out
    assert "DEPLOYSIM_TEST_UNSET_KEY is not set" in out and no_gate_table(out)
    code, out = run(capsys, "gate", "steady")  # the older PASS no longer stands
    assert code == cli.EXIT_ERROR and "could not decide" in out and no_gate_table(out)
    add("steady", env["url"])  # restored for the tests below


def test_a_dead_endpoint_exits_2_even_with_cached_answers_and_an_older_gate(env, capsys):
    add("ghost", env["url"])  # same model as steady: its answers are all in the cache
    code, out = run(capsys, "run", "ghost", "--skip-traffic")
    assert code in NOT_BLOCKED, out
    add("ghost", "http://127.0.0.1:1/v1", "steady", "--timeout-s", "2", "--max-retries", "1")
    code, out = run(capsys, "run", "ghost", "--skip-traffic")
    assert code == cli.EXIT_ERROR, out
    assert "replay_completeness" in out and no_gate_table(out)
    assert "answers from the cache" in out and "refused" in out.lower()  # the failure class, with its count
    assert cli.main(["gate", "ghost"]) == cli.EXIT_ERROR


def test_the_run_deadline_bounds_the_replay_and_says_so(env, capsys):
    add("late", env["url"], "slow", "--concurrency", "1")
    code, out = run(capsys, "run", "late", "--skip-traffic", "--deadline", "2")  # 60 x 0.7 s, one at a time
    assert code == cli.EXIT_ERROR and no_gate_table(out), out
    assert "deadline" in out and "replay_completeness" in out
    # run again without the deadline (pacing is not part of the replay's version): the completed replay
    # is written as a version of its own, not lost to the failed one with the same inputs
    from deploysim import lake, pipeline

    failed = lake.latest_version("replay", "late")
    add("late", env["url"], "slow", "--concurrency", "16")
    code, out = run(capsys, "run", "late", "--skip-traffic")
    assert code in NOT_BLOCKED, out
    assert lake.latest_version("replay", "late") != failed
    assert {r.status for r in pipeline.load_replay("late")} == {"ok"}


def test_a_dbt_failure_exits_2_and_names_dbt(env, capsys):
    # another process holds the warehouse (DuckDB allows one writer): dbt cannot build the gate
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ("import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(120)"),
            str(env["home"] / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out = run(capsys, "run", "steady", "--skip-traffic")
    finally:
        holder.kill()
        holder.wait()
    assert code == cli.EXIT_ERROR, out
    assert "dbt" in out and no_gate_table(out)


def test_a_second_run_on_the_same_data_directory_is_told_who_holds_it(env, capsys):
    from deploysim import runs

    with runs.data_lock():
        code, out = run(capsys, "run", "steady", "--skip-traffic")
    assert code == cli.EXIT_ERROR
    assert "another deploysim run holds" in out and f"pid {os.getpid()}" in out and "Traceback" not in out


def _start_slow_run(env) -> subprocess.Popen:
    add("slowpoke", env["url"], "slow", "--concurrency", "2")
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "run", "slowpoke", "--skip-traffic"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_replay(proc: subprocess.Popen) -> str:
    seen = ""
    for line in proc.stdout:
        seen += line
        if "replay [slowpoke]" in line:  # the replay is under way
            return seen
    raise AssertionError(f"the run ended before its replay started:\n{seen}")


def _runs(env):
    import dagster as dg

    inst = dg.DagsterInstance.get()
    try:
        return {r.run_id: r.status for r in inst.get_runs(dg.RunsFilter(tags={"dagster/partition": "slowpoke"}))}
    finally:
        inst.dispose()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_replay_and_the_run_fails(env, capsys, sig, code):
    import dagster as dg

    before = set(_runs(env))
    proc = _start_slow_run(env)
    try:
        _wait_for_replay(proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, out
    assert "interrupted" in out and no_gate_table(out)
    new = {k: v for k, v in _runs(env).items() if k not in before}
    assert list(new.values()) == [dg.DagsterRunStatus.FAILURE]
    assert cli.main(["gate", "slowpoke"]) == cli.EXIT_ERROR


def test_a_run_left_started_by_kill_9_is_marked_failed_at_the_next_start(env, capsys):
    import dagster as dg

    before = set(_runs(env))
    proc = _start_slow_run(env)
    try:
        _wait_for_replay(proc)
        proc.kill()  # SIGKILL: nothing of the process runs
        proc.wait()
    finally:
        proc.kill()
    left = {k: v for k, v in _runs(env).items() if k not in before}
    assert list(left.values()) == [dg.DagsterRunStatus.STARTED]
    code, out = run(capsys, "run", "ghost", "--skip-traffic")  # any next run, on the same data directory
    assert f"run {next(iter(left))} was left unfinished" in out
    assert _runs(env)[next(iter(left))] == dg.DagsterRunStatus.FAILURE


def test_two_writers_of_one_lake_file_never_share_a_temporary_file(tmp_path, monkeypatch):
    # finding 9's FileNotFoundError: both writers used <file>.tmp, and the first rename took the other's
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    from deploysim import lake, pipeline

    path = lake.lake_path("redacted")
    a = pipeline._BatchWriter(path, pipeline._conversation_schema())
    b = pipeline._BatchWriter(path, pipeline._conversation_schema())
    assert a.tmp != b.tmp
    a.close()
    b.close()  # the old code raised FileNotFoundError here
    assert lake.read_rows(path) == [] and [p.name for p in path.parent.iterdir()] == ["redacted.parquet"]
