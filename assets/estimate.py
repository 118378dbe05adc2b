import dagster as dg

from assets.common import recorded, result, upstream_versions
from deploysim import pipeline
from deploysim.report import tables
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates
from orchestration.resources import Settings


class EstimateConfig(dg.Config):
    look: int = 0  # round of a sample grown until the gate decides (0: a fixed sample)


@dg.asset(
    deps=["grade", "sample", "labels"],
    partitions_def=candidates,
    code_version="3",
    group_name="simulation",
    owners=OWNERS,
    kinds={"python", "parquet"},
)
def estimate(context: dg.AssetExecutionContext, config: EstimateConfig, settings: Settings) -> dg.MaterializeResult:
    """Weighted prevalence per behaviour with 95% intervals, the paired difference to the baseline,
    a PPI++ grader-corrected rate where human labels exist, and the further conversations that would
    decide each gated rate."""
    s = settings.resolve()
    changed = pipeline.evaluation_changes(
        recorded(context.instance, "estimate", context.partition_key).get("settings"), s
    )
    if changed:
        context.log.warning(f"{context.partition_key} is evaluated differently from its last run: {'; '.join(changed)}")
    up = upstream_versions(context, ["grade", "labels"])  # the sample: as the candidate's replay pinned it
    meta = pipeline.run_estimate(
        context.partition_key, settings=s, grade_version=up["grade"], labels_version=up["labels"], look=config.look
    )
    if changed:
        meta["evaluated_differently"] = changed
    return result(tables.estimate_metadata(meta), settings=s, upstream=up | {"sample": meta.get("sample_version")})
