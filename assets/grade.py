import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.partitions import candidates


@dg.asset(deps=["replay"], partitions_def=candidates, code_version="2", group_name="simulation",
          kinds={"python", "parquet"})
def grade(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Every taxonomy behaviour graded for the candidate and its baseline on the same conversations."""
    return result(pipeline.run_grade(context.partition_key))
