"""Running the jobs in-process on a Dagster instance (used by the CLI and the tests)."""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from orchestration.definitions import all_assets, all_checks, defs
from orchestration.jobs import score_forecast, simulate_candidate, traffic
from orchestration.partitions import candidates


def instance() -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (default <DEPLOYSIM_HOME>/dagster), as `dagster dev` uses."""
    if not os.environ.get("DAGSTER_HOME"):
        path = Path(os.environ["DEPLOYSIM_HOME"]) / "dagster"
        os.environ["DAGSTER_HOME"] = str(path)
    path = Path(os.environ["DAGSTER_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists():
        (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


def add_partition(inst: dg.DagsterInstance, name: str) -> None:
    if not inst.has_dynamic_partition(candidates.name, name):
        inst.add_dynamic_partitions(candidates.name, [name])


def _materialize(inst: dg.DagsterInstance, selection: dg.AssetSelection, partition: str | None, verbose: bool):
    # Dagster's console log only when asked; failures are summarised by the caller.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}}}
    return dg.materialize(
        [*all_assets, *all_checks],
        selection=selection,
        partition_key=partition,
        instance=inst,
        resources=defs.resources,
        run_config=run_config,
        raise_on_error=False,
    )


def run_traffic(inst: dg.DagsterInstance, verbose: bool = False) -> dg.ExecuteInProcessResult:
    return _materialize(inst, traffic.selection, None, verbose)


def run_candidate(inst: dg.DagsterInstance, name: str, verbose: bool = False) -> dg.ExecuteInProcessResult:
    add_partition(inst, name)
    return _materialize(inst, simulate_candidate.selection, name, verbose)


def run_scorecard(inst: dg.DagsterInstance, name: str, verbose: bool = False) -> dg.ExecuteInProcessResult:
    add_partition(inst, name)
    return _materialize(inst, score_forecast.selection, name, verbose)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    out = []
    for e in result.all_events:
        if e.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = e.event_specific_data
            if not ev.passed:
                out.append(f"{ev.asset_key.to_user_string()}:{ev.check_name}")
    return out


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step: the step and its error's first line (user code errors unwrapped)."""
    out = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            err = e.event_specific_data.error
            while err is not None and err.cause is not None and "DagsterExecutionStepExecutionError" in err.cls_name:
                err = err.cause
            msg = (err.message if err else "unknown error").strip().splitlines()[0]
            out.append(f"{e.step_key}: {msg}")
    return out
