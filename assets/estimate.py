import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.partitions import candidates


@dg.asset(deps=["grade", "sample", "labels"], partitions_def=candidates, code_version="2", group_name="simulation",
          kinds={"python", "parquet"})
def estimate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Weighted prevalence per behaviour with 95% intervals, the paired difference to the baseline,
    and a PPI++ grader-corrected rate where human labels exist."""
    return result(pipeline.run_estimate(context.partition_key))
