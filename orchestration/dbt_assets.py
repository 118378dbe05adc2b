"""dbt models as Dagster assets: seeds (static) and per-candidate marts, in two steps.

The gate's blocking dbt test sits on gate_failures, in its own step with release_decision,
so a blocked candidate still gets its release_gate rows and its report.
"""

import json
import os
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from dagster_shared.record import replace

from deploysim import lake, pipeline
from orchestration.partitions import candidates
from orchestration.resources import Settings, dbt_project


class Translator(DagsterDbtTranslator):
    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        """dbt tests on the candidate models are checks of a candidate partition: each result records the
        candidate it was evaluated for (the gate of `regressing` never reads as `steady`'s)."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        test = manifest["nodes"].get(unique_id) or {}
        models = [manifest["nodes"].get(n) or {} for n in test.get("depends_on", {}).get("nodes", [])]
        if spec is not None and any("candidate" in (m.get("tags") or []) for m in models):
            spec = replace(spec, partitions_def=candidates)
        return spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        if dbt_resource_props["resource_type"] == "seed":
            return "traffic"
        return "scorecard" if "scorecard" in dbt_resource_props.get("tags", []) else "gate"


translator = Translator()


@dbt_assets(
    manifest=dbt_project().manifest_path,
    select="resource_type:seed",
    dagster_dbt_translator=translator,
    name="dbt_seeds",
)
def dbt_seeds(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    _dbt_env()
    yield from dbt.cli(["seed"], context=context, target_path=_target(context)).stream()


def _dbt_env() -> None:
    """dbt's profile reads DEPLOYSIM_HOME: give the dbt process the data directory this run uses."""
    os.environ["DEPLOYSIM_HOME"] = str(lake.home())


def _target(context: dg.AssetExecutionContext) -> Path:
    """dbt's target folder for this step, in the data directory (reused run after run, so it does not grow)."""
    name = context.op_def.name + (f"-{context.partition_key}" if context.has_partition_key else "")
    return lake.home() / "dbt-target" / name


def _candidate_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: Settings):
    key = context.partition_key
    dbt_vars = run_vars(context.instance, key, context.run_id)
    # the one replay-completeness threshold (a setting), for dbt's test on replay_summary
    dbt_vars["min_completeness"] = settings.resolve().min_completeness_pct / 100
    # release_gate_export (dbt-duckdb's external materialisation) writes this run's gate rows here
    pipeline.gate_path(key, context.run_id).parent.mkdir(parents=True, exist_ok=True)
    args = ["build", "--vars", json.dumps(dbt_vars)]
    # A failing dbt test becomes a check result (the gate); dbt skips what depends on it.
    _dbt_env()
    invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=_target(context))
    yield from invocation.stream()
    raise_on_dbt_errors(invocation)


def run_vars(instance: dg.DagsterInstance, key: str, run_id: str) -> dict[str, str | float]:
    """dbt's --vars for a candidate's run: the Dagster run id (the gate history's key) and the versions
    of the estimate and replay it reads, as their latest materialisations recorded them."""
    from assets.common import recorded

    est = recorded(instance, "estimate", key)
    upstream = est.get("upstream") or {}
    return {
        "candidate": key,
        "run_id": run_id,
        "estimate_version": str(est.get("version") or ""),
        "replay_version": str(est.get("replay_version") or recorded(instance, "replay", key).get("version") or ""),
        "sample_version": str(est.get("sample_version") or upstream.get("sample") or ""),
    }


def raise_on_dbt_errors(invocation) -> None:
    """A model that errored (not a test that failed) or a dbt that could not run fails the step, saying why."""
    if invocation.process.returncode not in (0, 1):
        raise RuntimeError(
            f"dbt could not run (exit code {invocation.process.returncode}): "
            + (_first_error(invocation) or "see the dbt output above")
        )
    try:
        results = invocation.get_artifact("run_results.json")["results"]
    except (OSError, ValueError, KeyError):
        results = []
    errors = [r for r in results if r.get("status") == "error"]
    if errors:
        first = (errors[0].get("message") or "").strip().splitlines()
        raise RuntimeError(
            f"dbt: {len(errors)} node(s) errored, first {errors[0]['unique_id']}: {first[0] if first else 'no message'}"
        )


def _first_error(invocation) -> str:
    msgs = getattr(invocation, "_error_messages", None) or []
    return msgs[0].strip().splitlines()[0] if msgs else ""


@dbt_assets(
    manifest=dbt_project().manifest_path,
    select="tag:candidate",
    exclude="tag:decision tag:scorecard",
    partitions_def=candidates,
    dagster_dbt_translator=translator,
    name="dbt_candidate_marts",
)
def dbt_candidate_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: Settings):
    yield from _candidate_build(context, dbt, settings)


@dbt_assets(
    manifest=dbt_project().manifest_path,
    select="tag:decision",
    partitions_def=candidates,
    dagster_dbt_translator=translator,
    name="dbt_candidate_decision",
)
def dbt_candidate_decision(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: Settings):
    yield from _candidate_build(context, dbt, settings)


@dbt_assets(
    manifest=dbt_project().manifest_path,
    select="tag:scorecard",
    partitions_def=candidates,
    dagster_dbt_translator=translator,
    name="dbt_scorecard",
)
def dbt_scorecard(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: Settings):
    yield from _candidate_build(context, dbt, settings)
