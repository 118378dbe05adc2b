"""Two jobs: the traffic (shared by all candidates) and one candidate's simulation."""
import dagster as dg

traffic = dg.define_asset_job(
    "traffic",
    selection=dg.AssetSelection.groups("traffic"),
    description="Ingest, redact and sample the logs; load the gate thresholds.",
)

simulate_candidate = dg.define_asset_job(
    "simulate_candidate",
    selection=dg.AssetSelection.groups("simulation", "gate"),
    description="Replay, grade, estimate, gate and report one candidate (one partition per run).",
)
