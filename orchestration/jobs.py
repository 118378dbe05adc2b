"""Jobs: the traffic (shared by all candidates), one candidate's simulation, and its forecast scorecard.

Groups, left to right: traffic, simulation, gate, release (the decision, the report and, after a
release, the production rates observed), scorecard (the forecast scored against them)."""

import dagster as dg

traffic = dg.define_asset_job(
    "traffic",
    selection=dg.AssetSelection.groups("traffic"),
    description="Ingest and redact days of logs (a partition per day, a range in one run), sample the last "
    "days; load the gate thresholds.",
)

simulate_candidate = dg.define_asset_job(
    "simulate_candidate",
    selection=(dg.AssetSelection.groups("simulation", "gate", "release") | dg.AssetSelection.assets("discover"))
    - dg.AssetSelection.assets("observed"),
    description="Replay, grade, discover, estimate, gate, decide and report one candidate (one partition per run).",
)

score_forecast = dg.define_asset_job(
    "score_forecast",
    selection=dg.AssetSelection.groups("scorecard") | dg.AssetSelection.assets("observed", "report"),
    description="After a release: grade the candidate's production logs, score its forecast, refresh its report.",
)
