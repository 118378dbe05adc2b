import dagster as dg

from assets.common import chain_versions, progress_logger, result
from deploysim import pipeline
from deploysim.report import tables
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates


class ReplayConfig(dg.Config):
    deadline_s: float | None = None  # seconds the replay may take; items not done by then fail


@dg.asset(
    deps=["sample", "redact"],
    partitions_def=candidates,
    code_version="2",
    group_name="simulation",
    owners=OWNERS,
    kinds={"python", "parquet"},
)
def replay(context: dg.AssetExecutionContext, config: ReplayConfig) -> dg.MaterializeResult:
    """The candidate's regenerated last turn for every sampled conversation (agent loops included)."""
    up, base = chain_versions(context, ["sample", "redact"])  # the traffic versions this replay pins
    meta = pipeline.run_replay(
        context.partition_key,
        progress=progress_logger(context),
        deadline_s=config.deadline_s,
        sample_version=up["sample"],
        redact_version=up["redact"],
        baseline_replay_version=base,
    )
    return result(tables.replay_metadata(meta), upstream=up)
