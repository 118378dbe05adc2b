import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.partitions import candidates


@dg.asset(deps=["grade", "sample"], partitions_def=candidates, code_version="1", group_name="simulation",
          kinds={"python", "parquet"})
def estimate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Weighted prevalence per behaviour with 95% intervals, and the paired difference to the baseline."""
    return result(pipeline.run_estimate(context.partition_key))
