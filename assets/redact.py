import dagster as dg

from assets.common import result, upstream_versions
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.resources import Settings


@dg.asset(deps=["ingest"], code_version="5", group_name="traffic", owners=OWNERS, kinds={"python", "parquet"})
def redact(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Conversations with personal data and secrets replaced by placeholders; raw text stops here."""
    s = settings.resolve()
    return result(
        pipeline.run_redact(purge_raw=s.purge_raw, settings=s), upstream=upstream_versions(context, ["ingest"])
    )
