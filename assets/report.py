import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.partitions import candidates


@dg.asset(deps=["release_gate", "replay", "grade", "labels", "observed"], partitions_def=candidates, code_version="3",
          group_name="simulation", kinds={"python", "html"})
def report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Self-contained HTML report and a Markdown summary of the gate."""
    meta = pipeline.run_report(context.partition_key)
    meta["path"] = dg.MetadataValue.path(meta["path"])
    return result(meta)
