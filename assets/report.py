import dagster as dg

from assets.common import latest_record, result, upstream_versions
from deploysim import pipeline
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["release_gate", "replay", "grade", "labels", "observed", "discover"],
    partitions_def=candidates,
    code_version="3",
    group_name="simulation",
    kinds={"python", "html"},
)
def report(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Self-contained HTML report and a Markdown summary of the gate."""
    key = context.partition_key
    up = upstream_versions(context, ["estimate", "discover"])
    gate = latest_record(context.instance, "release_gate", key)  # the dbt run whose gate this reports
    meta = pipeline.run_report(
        key,
        settings=settings.resolve(),
        run_id=context.run_id,
        gate_run_id=gate.run_id if gate else None,
        estimate_version=up["estimate"],
        discover_version=up["discover"],
    )
    return result(meta, upstream=up | {"release_gate": f"run {gate.run_id}" if gate else None})
