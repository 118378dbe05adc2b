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

from deploysim import lake, pipeline, warehouse
from deploysim.report import tables
from orchestration.metadata import OWNERS, as_metadata
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
        if spec is not None and not spec.description:
            spec = replace(spec, description=check_description(test, manifest))
        return spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        if dbt_resource_props["resource_type"] == "seed":
            return "traffic"  # loaded with the traffic, read by every gate
        if "scorecard" in dbt_resource_props.get("tags", []):
            return "scorecard"
        return "release" if dbt_resource_props["name"] == "release_decision" else "gate"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The model's description from its YAML, without the raw SQL dagster-dbt appends by default."""
        props = dbt_resource_props
        return (props.get("description") or "").strip() or f"dbt {props['resource_type']} {props['name']}"


def check_description(test: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """A dbt test's description from its YAML, else in words: "decision of release_decision is never
    null (dbt test, severity error)"."""
    if (test.get("description") or "").strip():
        return test["description"].strip()
    meta = test.get("test_metadata") or {}
    kwargs = meta.get("kwargs") or {}
    model = (manifest["nodes"].get(test.get("attached_node") or "") or {}).get("name", "the model")
    column = kwargs.get("column_name")
    what = {
        "not_null": f"{column} of {model} is never null",
        "unique": f"{column} is unique in {model}",
        "accepted_values": f"{column} of {model} is one of {', '.join(map(str, kwargs.get('values') or []))}",
        "min_value": f"{column} of {model} is at least {kwargs.get('min')}",
        "has_no_rows": f"{model} has no rows",
    }.get(meta.get("name", ""), f"{meta.get('name') or test.get('name')} on {model}")
    return f"{what} (dbt test, severity {test.get('config', {}).get('severity', 'error').lower()})"


translator = Translator()


@dbt_assets(
    manifest=dbt_project().manifest_path,
    select="resource_type:seed",
    dagster_dbt_translator=translator,
    name="dbt_seeds",
)
def dbt_seeds(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    _dbt_env()
    invocation = dbt.cli(["seed"], context=context, target_path=_target(context))
    yield from with_console_metadata(list(invocation.stream()), invocation.manifest, None, context.run_id)


def _dbt_env() -> None:
    """dbt's profile reads DEPLOYSIM_HOME and DEPLOYSIM_LAKE: give the dbt process the data directory and
    the lake this run uses (absolute, or the object-store URI without a trailing slash)."""
    os.environ["DEPLOYSIM_HOME"] = str(lake.home())
    if os.environ.get("DEPLOYSIM_LAKE"):
        os.environ["DEPLOYSIM_LAKE"] = str(lake.root())


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
    lake.makedirs(pipeline.gate_path(key, context.run_id).parent)
    args = ["build", "--vars", json.dumps(dbt_vars)]
    # A failing dbt test becomes a check result (the gate); dbt skips what depends on it.
    _dbt_env()
    invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=_target(context))
    events = list(invocation.stream())  # dbt has finished: its warehouse can be read
    yield from with_console_metadata(events, invocation.manifest, key, context.run_id)
    raise_on_dbt_errors(invocation)


def with_console_metadata(events: list, manifest: Mapping[str, Any], candidate: str | None, run_id: str):
    """The dbt events, each materialisation with its row counts (dagster/row_count; of the candidate's
    run, dagster/partition_row_count) and, for release_decision, release_gate and replay_summary, what
    the operator reads: the verdict and reasons as Markdown, the gate and replay summary as tables.
    Read from the warehouse read-only after dbt exits (dagster-dbt's fetch_row_counts keeps a
    read-write DuckDB connection open in this process, which locks out the next dbt step)."""
    nodes = manifest["nodes"]

    def node_of(event) -> Mapping[str, Any]:
        uid = event.metadata.get("unique_id")
        return nodes.get(getattr(uid, "value", uid)) or {}

    built = [e for e in events if isinstance(e, (dg.Output, dg.AssetMaterialization))]
    names = sorted({str(n.get("alias") or n.get("name")) for n in map(node_of, built) if n})
    seen = warehouse.look(names, candidate, run_id)
    for event in events:
        node = node_of(event) if isinstance(event, (dg.Output, dg.AssetMaterialization)) else {}
        name = node.get("alias") or node.get("name")
        if name and name in seen.get("counts", {}):
            event = event.with_metadata({**event.metadata, **_console(name, candidate, seen)})
        yield event


def _console(name: str, candidate: str | None, seen: dict[str, Any]) -> dict[str, Any]:
    total, mine = seen["counts"][name]
    meta: dict[str, Any] = {"dagster/row_count": dg.MetadataValue.int(total)}
    if mine is not None:
        meta["dagster/partition_row_count"] = dg.MetadataValue.int(mine)
    if candidate and name == "release_decision":
        meta |= as_metadata(tables.decision_metadata(candidate, seen["decision"], seen["gate"]))
    elif candidate and name == "release_gate":
        meta |= as_metadata({"gate": tables.gate_table(seen["gate"])})
    elif name == "replay_summary":
        meta |= as_metadata({"replay_summary": tables.replay_summary_table(seen["replay_summary"])})
    return meta


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
