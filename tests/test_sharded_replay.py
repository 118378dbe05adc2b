"""Sharded replay (issue 13, item 3): the replay fans out into shards that Dagster's multiprocess
executor runs in parallel, and the estimates equal the unsharded run's on the same sample.

Real parts: demo logs, the reference endpoint over HTTP on 127.0.0.1, the CLI, Dagster's executors on a
persistent instance, dbt on DuckDB."""

from __future__ import annotations

import pytest

from orchestration import cli

COMPARED = ("behaviour", "status", "flagged", "applicable", "rate", "ci_low", "ci_high", "baseline_rate", "decided_by")


def _run_home(tmp_path_factory, name: str, *flags: str) -> dict:
    """A fresh data directory, regressing run there with the given flags; what the run wrote."""
    import dagster as dg

    from deploysim import pipeline, runs
    from deploysim_testkit.cli_home import small_home
    from orchestration.runner import instance

    home = tmp_path_factory.mktemp(name)
    with small_home(home) as server:
        assert cli.main(["candidate", "add", "regressing", "--base-url", server.base_url, "--model", "regressing"]) == 0
        code = cli.main(["run", "regressing", *flags])
        run_id = runs.last("regressing")["run_id"]
        replay = pipeline.load_replay("regressing")
        events = [e for e in instance().all_logs(run_id) if e.step_key and e.dagster_event]
        steps = {e.step_key for e in events}
        workers = {e.step_key for e in events if e.dagster_event.event_type_value == "STEP_WORKER_STARTED"}
        checks = {
            e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
            for e in events
            if e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        meta = instance().get_latest_materialization_event(dg.AssetKey("replay"))
        gate = [{k: r.get(k) for k in COMPARED} for r in pipeline.read_gate("regressing", run_id)]
        return {
            "code": code,
            "gate": sorted(gate, key=str),
            "replay": [(r.conversation_id, r.status, [m.model_dump() for m in r.turn]) for r in replay],
            "steps": steps,
            "workers": workers,
            "checks": checks,
            "meta": {k: getattr(v, "value", v) for k, v in meta.asset_materialization.metadata.items()},
            "shard_files": sorted(str(p) for p in (home / "lake" / "replay_shards").rglob("*.parquet")),
        }


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return _run_home(tmp_path_factory, "unsharded"), _run_home(tmp_path_factory, "sharded", "--shards", "3")


def test_sharded_replay_gives_the_unsharded_estimates(both):
    one, three = both
    assert one["code"] == three["code"] == cli.EXIT_BLOCKED
    assert len(one["replay"]) == 60
    assert three["replay"] == one["replay"]  # the same conversations, answers and order
    assert three["gate"] == one["gate"]


def test_the_shards_ran_as_parallel_steps_and_the_checks_cover_their_union(both):
    one, three = both
    shards = {f"replay.replay_shard[shard_{i}]" for i in range(3)}
    assert shards <= three["steps"] and shards <= three["workers"]  # each in its own worker process
    assert {"replay.replay_plan", "replay.replay_merge"} <= three["steps"]
    assert not one["workers"]  # the unsharded run stays in-process
    assert three["meta"]["shards"] == 3 and three["meta"]["replayed"] == 60
    assert three["checks"]["replay_completeness"] and three["checks"]["replay_has_no_residual_pii"]
    assert three["shard_files"] == one["shard_files"] == []  # merged, then removed


def test_the_plan_deals_every_sampled_conversation_to_one_shard(tmp_path, monkeypatch):
    from deploysim import candidates as reg
    from deploysim import lake, pipeline

    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    ids = [f"c{i:03d}" for i in range(10)]
    lake.write_rows_version("sample", None, "s1", [{"conversation_id": i} for i in ids])
    reg.register(reg.Candidate(name="x", base_url="http://127.0.0.1:9/v1", model="m", concurrency=10))
    parts = pipeline.plan_replay("x", 3, "s1", "r1")
    assert [p["shard"] for p in parts] == [0, 1, 2] and {p["shards"] for p in parts} == {3}
    assert sorted(i for p in parts for i in p["ids"]) == ids
    assert len({p["plan"] for p in parts}) == 1
    assert len(pipeline.plan_replay("x", 50, "s1", "r1")) == 10  # never an empty shard
    with pytest.raises(ValueError, match="at least 1"):
        pipeline.plan_replay("x", 0, "s1", "r1")
    with pytest.raises(ValueError, match="do not make one replay"):
        pipeline.merge_replay([parts[0] | {"path": "x"}, parts[2] | {"path": "y"}])
