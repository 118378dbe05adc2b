import dagster as dg

from assets.common import result
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.resources import Settings


@dg.asset(code_version="2", group_name="traffic", owners=OWNERS, kinds={"python", "parquet"})
def ingest(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Production logs read and validated into the restricted raw zone; bad records quarantined."""
    s = settings.resolve()
    meta = pipeline.run_ingest(s.logs_spec(), settings=s)
    context.log.info(f"read {meta['read']}: {meta['accepted']} accepted, {meta['quarantined']} quarantined")
    return result(meta)
