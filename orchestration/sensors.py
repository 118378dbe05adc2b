"""A sensor that adds a partition and launches a simulation when a candidate is registered.

Its cursor keeps the candidates it has seen; at its first evaluation, candidates that already have
runs count as seen, so turning it on launches only the new ones."""

import json

import dagster as dg

from deploysim.candidates import load_registry
from orchestration.jobs import simulate_candidate
from orchestration.partitions import CANDIDATES, candidates


@dg.sensor(
    job=simulate_candidate,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches simulate_candidate once for each newly registered candidate (deploysim candidate add).",
)
def new_candidates(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    registered = set(load_registry().candidates)
    if context.cursor is None:  # first evaluation: what already ran is not new
        seen = {k for k in registered if context.instance.get_runs_count(dg.RunsFilter(tags={"dagster/partition": k}))}
    else:
        seen = set(json.loads(context.cursor))
    existing = set(context.instance.get_dynamic_partitions(CANDIDATES))
    new = sorted(registered - seen)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"candidate-{k}", partition_key=k) for k in new],
        dynamic_partitions_requests=[candidates.build_add_request(sorted(registered - existing))]
        if registered - existing
        else [],
        cursor=json.dumps(sorted(seen | registered)),
    )
