import warnings

import dagster as dg

from assets.common import day_results, upstream_version
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.partitions import days
from orchestration.resources import Settings

# backfill_policy is beta in Dagster 1.13; relied on knowingly
warnings.filterwarnings("ignore", category=dg.BetaWarning)


@dg.asset(
    deps=["ingest"],
    code_version="6",
    group_name="traffic",
    owners=OWNERS,
    kinds={"python", "parquet"},
    partitions_def=days,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def redact(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Each day's conversations with personal data and secrets replaced by placeholders; raw text stops here."""
    s = settings.resolve()
    meta = pipeline.run_redact(purge_raw=s.purge_raw, settings=s, days=context.partition_keys)
    ups = {d: {"ingest": upstream_version(context.instance, "ingest", d)} for d in context.partition_keys}
    return day_results(context, meta, upstream=ups)
