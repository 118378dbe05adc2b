"""The Dagster definitions: assets, checks, jobs, sensor and resources, built explicitly."""

import dagster as dg

from assets.discover import discover
from assets.estimate import estimate
from assets.grade import grade
from assets.ingest import ingest
from assets.labels import labels
from assets.observed import observed
from assets.redact import redact
from assets.replay import replay
from assets.report import report
from assets.sample import sample
from orchestration.checks import all_checks
from orchestration.dbt_assets import dbt_candidate_decision, dbt_candidate_marts, dbt_scorecard, dbt_seeds
from orchestration.jobs import score_forecast, simulate_candidate, traffic
from orchestration.resources import resources
from orchestration.schedules import nightly_candidates, nightly_traffic
from orchestration.sensors import new_candidates

all_assets = [
    ingest,
    redact,
    sample,
    labels,
    replay,
    grade,
    discover,
    estimate,
    dbt_seeds,
    dbt_candidate_marts,
    dbt_candidate_decision,
    report,
    observed,
    dbt_scorecard,
]

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[traffic, simulate_candidate, score_forecast],
    sensors=[new_candidates],
    schedules=[nightly_traffic, nightly_candidates],
    resources=resources(),
)
