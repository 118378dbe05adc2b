"""A sensor that adds a partition and launches a simulation when a candidate is registered."""

import json

import dagster as dg

from deploysim.candidates import load_registry
from orchestration.jobs import simulate_candidate
from orchestration.partitions import CANDIDATES, candidates


@dg.sensor(job=simulate_candidate, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def new_candidates(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen = set(json.loads(context.cursor or "[]"))
    registered = set(load_registry().candidates)
    existing = set(context.instance.get_dynamic_partitions(CANDIDATES))
    new = sorted(registered - seen)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"candidate-{k}", partition_key=k) for k in new],
        dynamic_partitions_requests=[candidates.build_add_request(sorted(registered - existing))]
        if registered - existing
        else [],
        cursor=json.dumps(sorted(seen | registered)),
    )
