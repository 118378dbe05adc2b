import dagster as dg

from assets.common import latest_record, result, upstream_versions
from deploysim import pipeline
from deploysim.report import tables
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["release_gate", "replay", "grade", "labels", "observed", "discover"],
    partitions_def=candidates,
    code_version="4",  # 4: reasons first, small-rate charts, breakdown by stratum, examples with evidence
    group_name="release",
    owners=OWNERS,
    kinds={"python", "html"},
)
def report(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Self-contained HTML report of one gate evaluation; in the UI, the verdict and its reasons (Markdown),
    the gate and the graders' calibration against human labels as tables."""
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
    return result(
        tables.report_metadata(meta, key), upstream=up | {"release_gate": f"run {gate.run_id}" if gate else None}
    )
