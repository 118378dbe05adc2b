"""A nightly re-simulation of every registered candidate (off until turned on in the UI)."""

from datetime import timedelta, timezone

import dagster as dg

from orchestration.jobs import simulate_candidate, traffic
from orchestration.partitions import CANDIDATES


@dg.schedule(
    job=simulate_candidate,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-simulates every registered candidate nightly, one run per candidate partition.",
)
def nightly_candidates(context: dg.ScheduleEvaluationContext):
    """One run per candidate partition; the replay cache makes unchanged requests free."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for key in context.instance.get_dynamic_partitions(CANDIDATES):
        yield dg.RunRequest(run_key=f"{key}-{day}", partition_key=key)


@dg.schedule(
    job=traffic,
    cron_schedule="0 2 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Ingests and redacts the day that just ended (UTC) and re-draws the sample over the last days, "
    "before the candidates' nightly runs.",
)
def nightly_traffic(context: dg.ScheduleEvaluationContext):
    """One run for yesterday's partition (its sample and seeds in the same run)."""
    day = (context.scheduled_execution_time.astimezone(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    yield dg.RunRequest(run_key=f"traffic-{day}", partition_key=day)
