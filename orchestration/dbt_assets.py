"""dbt models as Dagster assets: seeds (static) and per-candidate marts, in two steps.

The gate's blocking dbt test sits on gate_failures, in its own step with release_decision,
so a blocked candidate still gets its release_gate rows and its report.
"""
import json
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from deploysim import pipeline
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
    yield from dbt.cli(["seed"], context=context).stream()


def _candidate_build(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    key = context.partition_key
    pipeline.gate_dir(key)  # the release_gate post-hook writes its Parquet export here
    args = ["build", "--vars", json.dumps({"candidate": key})]
    # dbt's own failures become check results; dbt skips what depends on a failed test.
    yield from dbt.cli(args, context=context, raise_on_error=False).stream()


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
