import dagster as dg

from assets.common import result
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(partitions_def=candidates, code_version="1", group_name="release", owners=OWNERS, kinds={"python", "parquet"})
def observed(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """A released candidate's production logs graded with the taxonomy: the observed rates its
    forecast is scored against (DEPLOYSIM_OBSERVED_LOGS, default <home>/raw/observed/candidate=<name>)."""
    s = settings.resolve()
    return result(pipeline.run_observed(context.partition_key, settings=s), settings=s)
