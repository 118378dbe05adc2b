import warnings

import dagster as dg

from assets.common import day_results
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.partitions import days
from orchestration.resources import Settings

# backfill_policy is beta in Dagster 1.13; relied on knowingly
warnings.filterwarnings("ignore", category=dg.BetaWarning)


@dg.asset(
    code_version="3",
    group_name="traffic",
    owners=OWNERS,
    kinds={"python", "parquet"},
    partitions_def=days,
    backfill_policy=dg.BackfillPolicy.single_run(),  # a range of days reads each log file once
)
def ingest(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Each day's production logs read and validated into the restricted raw zone; bad records quarantined."""
    s = settings.resolve()
    meta = pipeline.run_ingest(s.logs_spec(), settings=s, days=context.partition_keys)
    context.log.info(f"read {meta['read']}: {meta['accepted']} accepted, {meta['quarantined']} quarantined")
    return day_results(context, meta)
