import dagster as dg

from assets.common import result, upstream_versions
from deploysim import pipeline
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["grade", "sample", "labels"],
    partitions_def=candidates,
    code_version="2",
    group_name="simulation",
    kinds={"python", "parquet"},
)
def estimate(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Weighted prevalence per behaviour with 95% intervals, the paired difference to the baseline,
    and a PPI++ grader-corrected rate where human labels exist."""
    s = settings.resolve()
    up = upstream_versions(context, ["grade", "labels"])  # the sample: as the candidate's replay pinned it
    meta = pipeline.run_estimate(
        context.partition_key, settings=s, grade_version=up["grade"], labels_version=up["labels"]
    )
    return result(meta, settings=s, upstream=up | {"sample": meta.get("sample_version")})
