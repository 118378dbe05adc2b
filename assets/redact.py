import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.resources import Settings


@dg.asset(deps=["ingest"], code_version="2", group_name="traffic", kinds={"python", "parquet"})
def redact(settings: Settings) -> dg.MaterializeResult:
    """Conversations with personal data and secrets replaced by placeholders; raw text stops here."""
    return result(pipeline.run_redact(purge_raw=settings.purge_raw.lower() == "true"))
