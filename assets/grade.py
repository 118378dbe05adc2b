import dagster as dg

from assets.common import chain_versions, result
from deploysim import pipeline
from deploysim.report import tables
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["replay"],
    partitions_def=candidates,
    code_version="3",
    group_name="simulation",
    owners=OWNERS,
    kinds={"python", "parquet"},
)
def grade(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Every taxonomy behaviour graded for the candidate and its baseline on the same conversations."""
    s = settings.resolve()
    up, base = chain_versions(context, ["replay"])  # the sample and redacted versions: as the replay pinned them
    meta = pipeline.run_grade(
        context.partition_key, settings=s, replay_version=up["replay"], baseline_replay_version=base
    )
    return result(tables.grade_metadata(meta), settings=s, upstream=up)
