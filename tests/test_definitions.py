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
