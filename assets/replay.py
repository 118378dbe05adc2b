import dagster as dg

from deploysim import pipeline
from assets.common import progress_logger, result
from orchestration.partitions import candidates


class ReplayConfig(dg.Config):
    deadline_s: float | None = None  # seconds the replay may take; items not done by then fail


@dg.asset(deps=["sample", "redact"], partitions_def=candidates, code_version="2", group_name="simulation",
          kinds={"python", "parquet"})
def replay(context: dg.AssetExecutionContext, config: ReplayConfig) -> dg.MaterializeResult:
    """The candidate's regenerated last turn for every sampled conversation (agent loops included)."""
    return result(pipeline.run_replay(context.partition_key, progress=progress_logger(context),
                                      deadline_s=config.deadline_s))
