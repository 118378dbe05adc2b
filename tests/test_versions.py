"""Versioned materialisations end to end (issue 10, item 2): immutable lake versions, a candidate's chain
pinned to the sample it was replayed on, the gate history in dbt, per-run reports, `deploysim history`
and `deploysim gc`. Real parts: demo logs, the reference endpoint over HTTP, Dagster's materialize, dbt."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deploysim import lake


def _settings(**fields):
    from deploysim import settings

    return settings.load(**fields)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    home = tmp_path_factory.mktemp("versions")
    from deploysim_testkit.cli_home import isolated_env, restore_env

    old = isolated_env(home, DEPLOYSIM_SAMPLE_SIZE="60", DEPLOYSIM_SEED="7")
    import dagster as dg

    from deploysim.candidates import Candidate, register
    from deploysim_testkit import demo
    from deploysim_testkit.endpoint import start_in_thread
    from orchestration import cli, runner

    demo.generate(home / "raw", n=240, seed=7)
    inst = dg.DagsterInstance.ephemeral()
    out: dict = {"home": home, "inst": inst, "runner": runner}
    with start_in_thread() as server:
        register(
            Candidate(name="steady", base_url=server.base_url, model="steady", tool_simulator_model="tool-simulator")
        )
        assert runner.run_traffic(inst, settings=_settings()).success
        out["sample_1"] = lake.latest_version("sample")
        out["code_1"] = cli._run_candidate(inst, "steady", False, settings=_settings())
        out["estimate_1"] = _recorded(inst, "estimate")
        out["report_1"] = _recorded(inst, "report")

        # (d) the traffic is re-sampled (another seed); only estimate and report of steady run again
        os.environ["DEPLOYSIM_SEED"] = "11"
        assert runner.run_traffic(inst, settings=_settings(seed=11)).success
        out["sample_2"] = lake.latest_version("sample")
        out["partial"] = runner._materialize(
            inst, dg.AssetSelection.assets("estimate", "report"), "steady", False, settings=_settings(seed=11)
        )
        out["estimate_d"] = _recorded(inst, "estimate")
        out["report_d"] = _recorded(inst, "report")

        # (b) steady runs again, now on the new sample
        out["code_2"] = cli._run_candidate(inst, "steady", False, settings=_settings(seed=11))
        out["estimate_2"] = _recorded(inst, "estimate")
        out["report_2"] = _recorded(inst, "report")
        out["server"] = server
        yield out
    restore_env(old)


def _recorded(inst, asset: str, key: str = "steady") -> dict:
    from assets.common import recorded

    return recorded(inst, asset, key)


def _cli(capsys, *argv: str) -> tuple[int, str]:
    from orchestration.cli import main

    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


NOT_BLOCKED = (0, 3)  # 60 conversations may leave a behaviour undecided (exit 3)


def test_steady_passes_on_both_samples(sim):
    assert sim["code_1"] in NOT_BLOCKED and sim["code_2"] in NOT_BLOCKED
    assert sim["sample_1"] != sim["sample_2"]  # the seed changed the sample, hence its version


def test_materialisations_record_version_path_and_upstream(sim):
    est = sim["estimate_1"]
    path = Path(est["path"])
    assert path == lake.version_path("estimate", "steady", est["version"])
    assert path.parent.name == f"version={est['version']}" and path.parent.parent.name == "candidate=steady"
    assert set(est["upstream"]) >= {"grade", "labels", "sample"} and est["upstream"]["sample"] == sim["sample_1"]
    replay = lake.version_inputs("replay", "steady", est["replay_version"])
    assert replay["sample"] == sim["sample_1"]  # the replay pinned the sample it ran on
    rows = lake.read_rows(path)
    assert {r["version"] for r in rows} == {est["version"]} and {r["sample_version"] for r in rows} == {sim["sample_1"]}


def test_resampling_the_traffic_does_not_change_an_earlier_candidate(sim):
    assert sim["partial"].success, sim["runner"].step_errors(sim["partial"])
    # estimate and report re-ran after the traffic moved on: both read the sample steady's replay pinned
    assert sim["estimate_d"]["version"] == sim["estimate_1"]["version"]
    assert sim["estimate_d"]["sample_version"] == sim["sample_1"] != lake.latest_version("sample")
    first, again = Path(sim["report_1"]["path"]), Path(sim["report_d"]["path"])
    assert first != again and first.exists() and again.exists()  # one report per run, none overwritten
    assert first.read_text() == again.read_text()


def test_history_keeps_both_decisions_and_reports(sim, capsys):
    code, out = _cli(capsys, "history", "steady", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 2
    newest, oldest = rows
    assert {r["verdict"] for r in rows} <= {"pass", "inconclusive"}
    assert newest["sample_version"] == sim["sample_2"] and oldest["sample_version"] == sim["sample_1"]
    assert newest["decided_at"] >= oldest["decided_at"] and newest["run_id"] != oldest["run_id"]
    assert newest["report"] == sim["report_2"]["path"] and oldest["report"] == sim["report_1"]["path"]
    a, b = Path(oldest["report"]).read_text(), Path(newest["report"]).read_text()
    assert a != b  # different samples, different reports
    # the first run's estimate is still readable at its version
    first = lake.read_rows(lake.version_path("estimate", "steady", oldest["estimate_version"]))
    assert first and {r["sample_version"] for r in first} == {sim["sample_1"]}
    code, text = _cli(capsys, "history", "steady")
    assert code == 0 and oldest["run_id"] in text and newest["run_id"] in text


def test_gate_reads_the_latest_decided_run(sim, capsys):
    code, out = _cli(capsys, "gate", "steady")
    assert code in NOT_BLOCKED and "steady" in out and "PASS" in out
    from deploysim import pipeline, runs

    assert runs.last("steady")["run_id"] == json.loads(_cli(capsys, "history", "steady", "--json")[1])[0]["run_id"]
    assert pipeline.gate_path("steady", runs.last("steady")["run_id"]).exists()


def test_gc_keeps_what_the_kept_decision_references(sim, capsys):
    home = sim["home"]

    def tree() -> list[str]:
        return sorted(str(p) for d in ("lake", "reports") for p in (home / d).rglob("*"))

    before = tree()
    code, out = _cli(capsys, "gc", "--keep", "1", "--dry-run")
    assert code == 0 and "would remove" in out and f"sample/version={sim['sample_1']}" in out
    assert tree() == before  # a dry run removes nothing

    code, out = _cli(capsys, "gc", "--keep", "1")
    assert code == 0 and "bytes" in out
    first, second = sim["estimate_1"], sim["estimate_2"]
    assert not lake.version_path("sample", None, sim["sample_1"]).parent.exists()
    assert not lake.version_path("estimate", "steady", first["version"]).parent.exists()
    assert not lake.version_path("replay", "steady", first["replay_version"]).parent.exists()
    assert not Path(sim["report_1"]["path"]).exists() and not Path(sim["report_d"]["path"]).exists()
    # the second decision's chain is whole
    assert lake.version_path("sample", None, sim["sample_2"]).exists()
    assert lake.version_path("estimate", "steady", second["version"]).exists()
    assert lake.version_path("replay", "steady", second["replay_version"]).exists()
    assert lake.version_path("grade", "steady", second["upstream"]["grade"]).exists()
    assert Path(sim["report_2"]["path"]).exists()
    rows = json.loads(_cli(capsys, "history", "steady", "--json")[1])
    assert len(rows) == 2 and rows[1]["report"] is None  # the decision stays in the audit trail


def test_a_baseline_candidate_must_be_paired_on_the_same_sample(sim):
    """challenger's baseline is steady; after the traffic moves on, challenger's replay would be on a
    sample steady was not replayed on: the run fails saying so, before any call."""
    from deploysim.candidates import Candidate, register

    inst, runner = sim["inst"], sim["runner"]
    register(Candidate(name="challenger", base_url=sim["server"].base_url, model="steady", baseline="steady"))
    os.environ["DEPLOYSIM_SEED"] = "13"
    assert runner.run_traffic(inst, settings=_settings(seed=13)).success
    res = runner.run_candidate(inst, "challenger", settings=_settings(seed=13))
    errors = " ".join(runner.step_errors(res))
    assert not res.success and "must be replayed on sample version" in errors, errors
    assert lake.latest_version("sample") in errors and "deploysim run steady" in errors
