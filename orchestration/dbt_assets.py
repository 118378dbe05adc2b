"""dbt models as Dagster assets: seeds (static) and per-candidate marts, in two steps.

The gate's blocking dbt test sits on gate_failures, in its own step with release_decision,
so a blocked candidate still gets its release_gate rows and its report.
"""
import json
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from deploysim import lake, pipeline
from orchestration.partitions import candidates
from orchestration.resources import dbt_project


class Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        if dbt_resource_props["resource_type"] == "seed":
            return "traffic"
        return "scorecard" if "scorecard" in dbt_resource_props.get("tags", []) else "gate"


translator = Translator()


@dbt_assets(manifest=dbt_project.manifest_path, select="resource_type:seed", dagster_dbt_translator=translator,
            name="dbt_seeds")
def dbt_seeds(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["seed"], context=context, target_path=_target(context)).stream()


def _target(context: dg.AssetExecutionContext) -> Path:
    """dbt's target folder for this step, in the data directory (reused run after run, so it does not grow)."""
    name = context.op_def.name + (f"-{context.partition_key}" if context.has_partition_key else "")
    return lake.home() / "dbt-target" / name


def _candidate_build(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    key = context.partition_key
    pipeline.gate_dir(key)  # the release_gate post-hook writes its Parquet export here
    args = ["build", "--vars", json.dumps({"candidate": key})]
    # A failing dbt test becomes a check result (the gate); dbt skips what depends on it.
    invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=_target(context))
    yield from invocation.stream()
    raise_on_dbt_errors(invocation)


def raise_on_dbt_errors(invocation) -> None:
    """A model that errored (not a test that failed) or a dbt that could not run fails the step, saying why."""
    if invocation.process.returncode not in (0, 1):
        raise RuntimeError(f"dbt could not run (exit code {invocation.process.returncode}): "
                           + (_first_error(invocation) or "see the dbt output above"))
    try:
        results = invocation.get_artifact("run_results.json")["results"]
    except (OSError, ValueError, KeyError):
        results = []
    errors = [r for r in results if r.get("status") == "error"]
    if errors:
        first = (errors[0].get("message") or "").strip().splitlines()
        raise RuntimeError(f"dbt: {len(errors)} node(s) errored, first {errors[0]['unique_id']}: "
                           f"{first[0] if first else 'no message'}")


def _first_error(invocation) -> str:
    msgs = getattr(invocation, "_error_messages", None) or []
    return msgs[0].strip().splitlines()[0] if msgs else ""


@dbt_assets(manifest=dbt_project.manifest_path, select="tag:candidate", exclude="tag:decision tag:scorecard",
            partitions_def=candidates, dagster_dbt_translator=translator, name="dbt_candidate_marts")
def dbt_candidate_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from _candidate_build(context, dbt)


@dbt_assets(manifest=dbt_project.manifest_path, select="tag:decision",
            partitions_def=candidates, dagster_dbt_translator=translator, name="dbt_candidate_decision")
def dbt_candidate_decision(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from _candidate_build(context, dbt)


@dbt_assets(manifest=dbt_project.manifest_path, select="tag:scorecard",
            partitions_def=candidates, dagster_dbt_translator=translator, name="dbt_scorecard")
def dbt_scorecard(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from _candidate_build(context, dbt)
