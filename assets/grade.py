import dagster as dg

from assets.common import baseline_replay_version, result, upstream_versions
from deploysim import pipeline
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["replay"], partitions_def=candidates, code_version="2", group_name="simulation", kinds={"python", "parquet"}
)
def grade(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Every taxonomy behaviour graded for the candidate and its baseline on the same conversations."""
    s = settings.resolve()
    up = upstream_versions(context, ["replay"])  # the sample and redacted versions the replay pinned
    base = baseline_replay_version(context)
    meta = pipeline.run_grade(
        context.partition_key, settings=s, replay_version=up["replay"], baseline_replay_version=base
    )
    return result(meta, settings=s, upstream=up | ({"baseline_replay": base} if base else {}))
