"""The asset graph as a user sees it in the Dagster UI (a snapshot of keys, edges and checks)."""

import warnings

import pytest


@pytest.fixture(scope="module")
def graph():
    warnings.simplefilter("ignore")
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def parents(graph, key: str) -> set[str]:
    import dagster as dg

    return {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}


def test_lineage(graph):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "ingest",
        "redact",
        "sample",
        "replay",
        "grade",
        "estimate",
        "gate_thresholds",
        "stg_estimate",
        "release_gate",
        "gate_failures",
        "release_decision",
        "replay_summary",
        "report",
    } <= keys
    assert parents(graph, "redact") == {"ingest"}
    assert parents(graph, "replay") == {"sample", "redact"}
    assert parents(graph, "stg_estimate") == {"estimate"}  # dbt source linked to the Python asset
    assert "labels" in parents(graph, "estimate")
    assert "release_gate" in parents(graph, "release_decision")
    assert "gate_failures" not in parents(graph, "release_decision")  # a blocked decision is recorded too
    assert "gate_failures" not in parents(graph, "report")  # a blocked candidate still gets a report


def test_partitions(graph):
    import dagster as dg

    for key in ("replay", "grade", "estimate", "release_gate", "release_decision", "report"):
        pd = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(pd, dg.DynamicPartitionsDefinition) and pd.name == "candidates", key
    assert graph.get(dg.AssetKey("sample")).partitions_def is None
    for key in ("ingest", "redact"):  # the traffic by day, today included
        pd = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(pd, dg.DailyPartitionsDefinition) and pd.end_offset == 1, key
        assert graph.get(dg.AssetKey(key)).backfill_policy == dg.BackfillPolicy.single_run()
    # the sample reads the days of its window; a candidate's replay the sample's frame: all of redact's days
    for child in ("sample", "replay"):
        mapping = graph.get_partition_mapping(dg.AssetKey(child), dg.AssetKey("redact"))
        assert isinstance(mapping, dg.AllPartitionMapping), child


def test_blocking_checks(graph):
    blocking = {
        f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys if graph.get_check_spec(k).blocking
    }
    assert {
        "redact:redact_has_no_residual_pii",
        "replay:replay_has_no_residual_pii",
        "replay:replay_completeness",
        "report:report_has_no_residual_pii",
    } <= blocking
    assert any(c.startswith("gate_failures:has_no_rows") for c in blocking)


def test_candidate_checks_are_partitioned(graph):
    """dbt's tests on candidate models record the candidate they were evaluated for."""
    for k in graph.asset_check_keys:
        asset = k.asset_key.to_user_string()
        if asset in ("release_gate", "gate_failures", "gate_undecided", "release_decision", "replay_summary"):
            pd = graph.get_check_spec(k).partitions_def
            assert pd is not None and pd.name == "candidates", k


def test_code_versions(graph):
    import dagster as dg

    for key in ("ingest", "redact", "sample", "replay", "grade", "estimate", "report"):
        assert graph.get(dg.AssetKey(key)).code_version, key


def test_nightly_schedule_requests_one_run_per_candidate():
    import datetime

    import dagster as dg

    from orchestration.schedules import nightly_candidates

    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("candidates", ["a", "b"])
        ctx = dg.build_schedule_context(instance=inst, scheduled_execution_time=datetime.datetime(2026, 11, 27, 3))
        reqs = list(nightly_candidates(ctx))
    assert sorted(r.partition_key for r in reqs) == ["a", "b"]
    assert len({r.run_key for r in reqs}) == 2


GROUPS = ["traffic", "simulation", "gate", "release", "scorecard"]  # the lineage, left to right


def _says_something(text: str | None) -> bool:
    """A description a person wrote: not empty, not dbt's fallback name, not SQL."""
    t = (text or "").strip()
    low = t.lower()
    return (
        bool(t)
        and "raw sql" not in low
        and "```" not in t
        and "{{" not in t
        and not low.startswith(("select ", "with ", "dbt model ", "dbt seed "))
    )


def test_every_asset_has_a_description_an_owner_and_a_group(graph):
    import dagster as dg

    from orchestration.metadata import GROUPS as WIRED
    from orchestration.metadata import OWNERS

    assert WIRED == GROUPS and OWNERS
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        name = key.to_user_string()
        assert _says_something(node.description), (name, node.description)
        assert list(node.owners) == OWNERS, name
        assert node.group_name in GROUPS, (name, node.group_name)
    assert graph.get(dg.AssetKey("report")).group_name == "release"


def test_lineage_runs_left_to_right_through_the_groups(graph):
    """No edge goes from a later group to an earlier one: the UI draws traffic > ... > scorecard."""
    backwards = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        for parent in node.parent_keys:
            if GROUPS.index(graph.get(parent).group_name) > GROUPS.index(node.group_name):
                backwards.append(f"{parent.to_user_string()} -> {key.to_user_string()}")
    assert backwards == []
    used = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert used == set(GROUPS)


def test_every_check_job_sensor_and_schedule_is_described(graph):
    from orchestration.definitions import defs

    for k in graph.asset_check_keys:
        assert _says_something(graph.get_check_spec(k).description), k
    gate = [graph.get_check_spec(k) for k in graph.asset_check_keys if k.name.startswith("has_no_rows_gate_failures")]
    assert gate and "release gate" in (gate[0].description or "")  # the YAML's words, not a generated phrase
    jobs = [j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")]
    assert {j.name for j in jobs} == {"traffic", "simulate_candidate", "score_forecast"}
    for j in jobs:
        assert _says_something(j.description), j.name
    for s in [*defs.sensors, *defs.schedules]:
        assert _says_something(s.description), s.name


def test_dbt_descriptions_come_from_the_yaml_without_sql():
    """dagster-dbt appends the raw SQL to a model's description by default; ours does not."""
    from orchestration.dbt_assets import translator

    props = {"resource_type": "model", "name": "m", "description": "What m holds.", "raw_code": "select 1"}
    assert translator.get_description(props) == "What m holds."
    assert translator.get_owners(props) == ["team:release-engineering"]
    assert translator.get_group_name(props | {"name": "release_decision"}) == "release"


def test_the_replay_fans_out_into_shard_steps():
    from orchestration.definitions import defs

    job = defs.resolve_job_def("simulate_candidate")
    [replay] = [n for n in job.graph.nodes if n.name == "replay"]
    inner = {n.name for n in replay.definition.nodes}
    assert inner == {"replay_plan", "replay_shard", "replay_merge"}
    assert replay.definition.node_named("replay_plan").definition.output_defs[0].is_dynamic


def test_the_executor_is_dagsters_default_or_k8s(monkeypatch):
    from orchestration import jobs

    monkeypatch.delenv("DEPLOYSIM_EXECUTOR", raising=False)
    assert jobs.executor() is None
    monkeypatch.setenv("DEPLOYSIM_EXECUTOR", "k8s")
    assert jobs.executor().name == "k8s"
    monkeypatch.setenv("DEPLOYSIM_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="DEPLOYSIM_EXECUTOR='celery'"):
        jobs.executor()
