"""Jobs: the traffic (shared by all candidates), one candidate's simulation, and its forecast scorecard.

Groups, left to right: traffic, simulation, gate, release (the decision, the report and, after a
release, the production rates observed), scorecard (the forecast scored against them)."""

import os

import dagster as dg


def executor() -> dg.ExecutorDefinition | None:
    """The jobs' executor. Unset: Dagster's default (multiprocess; execute_in_process runs in-process).
    DEPLOYSIM_EXECUTOR=k8s: one Kubernetes Job per step (dagster-k8s, the `k8s` extra), so on a Helm
    deployment the replay's shards run in pods of their own. Read here, like DAGSTER_PG_URL in
    orchestration.instance: it is the deployment's choice, not a simulation setting."""
    name = os.environ.get("DEPLOYSIM_EXECUTOR", "").strip().lower()
    if name in ("", "default", "multiprocess"):
        return None
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"DEPLOYSIM_EXECUTOR={name!r}: use k8s, or leave it unset for Dagster's default")


traffic = dg.define_asset_job(
    "traffic",
    selection=dg.AssetSelection.groups("traffic"),
    executor_def=executor(),
    description="Ingest and redact days of logs (a partition per day, a range in one run), sample the last "
    "days; load the gate thresholds.",
)

simulate_candidate = dg.define_asset_job(
    "simulate_candidate",
    selection=(dg.AssetSelection.groups("simulation", "gate", "release") | dg.AssetSelection.assets("discover"))
    - dg.AssetSelection.assets("observed"),
    executor_def=executor(),
    description="Replay, grade, discover, estimate, gate, decide and report one candidate (one partition per run).",
)

score_forecast = dg.define_asset_job(
    "score_forecast",
    selection=dg.AssetSelection.groups("scorecard") | dg.AssetSelection.assets("observed", "report"),
    executor_def=executor(),
    description="After a release: grade the candidate's production logs, score its forecast, refresh its report.",
)
