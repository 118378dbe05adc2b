"""Running the jobs in-process on a Dagster instance (used by the CLI and the tests)."""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
from dagster._core.execution.job_execution_result import JobExecutionResult
from dagster._core.execution.plan.objects import StepFailureData
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from deploysim import days as dd
from deploysim import lake
from deploysim.settings import Settings
from orchestration.definitions import all_assets, all_checks, defs
from orchestration.instance import dagster_home, ensure_config
from orchestration.jobs import score_forecast, simulate_candidate, traffic
from orchestration.partitions import CANDIDATES, DAILY
from orchestration.partitions import days as days_partitions
from orchestration.resources import resources


def instance() -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (default <DEPLOYSIM_HOME>/dagster), as `dagster dev` uses:
    SQLite there, or Postgres with the daemon's run queue when DAGSTER_PG_URL is set (orchestration.instance)."""
    path = dagster_home()
    ensure_config(path)
    return dg.DagsterInstance.from_config(str(path))


def add_partition(inst: dg.DagsterInstance, name: str) -> None:
    if not inst.has_dynamic_partition(CANDIDATES, name):
        inst.add_dynamic_partitions(CANDIDATES, [name])


CLI_TAG = "deploysim/in_process"  # runs executed inside a deploysim command's own process
GATE_CHECK = "gate_failures:has_no_rows_gate_failures_"  # the gate itself: failing means "blocked"
UNDECIDED_CHECK = "gate_undecided:has_no_rows_gate_undecided_"  # warns: some behaviour is inconclusive
GATE_STEP = "dbt_candidate_decision"  # the step that carries the gate check


def _run_config(verbose: bool, ops: dict | None) -> dict:
    # Dagster's console log only when asked; failures are summarised by the caller.
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}}}
    if ops:
        run_config["ops"] = ops
    return run_config


def _where() -> str:
    """This host and data directory: the scope of the data-directory lock (one Postgres instance may serve
    several machines)."""
    return f"{socket.gethostname()}:{lake.home()}"


def _tags(partition: str | None) -> dict[str, str]:
    tags = {CLI_TAG: "true", "deploysim/pid": str(os.getpid()), WHERE_TAG: _where()}
    if partition:
        tags[CANDIDATE_TAG] = partition
    return tags


CANDIDATE_TAG = "deploysim/candidate"
WHERE_TAG = "deploysim/where"


def evaluation_tags(settings: Settings | None) -> dict[str, str]:
    """What a run evaluates with, as run tags (shown in the Runs list; never a secret or a URL)."""
    from deploysim.pipeline import EVALUATED_WITH
    from deploysim.settings import load

    s = settings or load()
    return {f"deploysim/{k}": str(getattr(s, k) if getattr(s, k) not in (None, "") else "-") for k in EVALUATED_WITH}


def _materialize(
    inst: dg.DagsterInstance,
    selection: dg.AssetSelection,
    partition: str | None,
    verbose: bool,
    ops: dict | None = None,
    settings: Settings | None = None,
):
    """Any selection of assets, as an ad-hoc run (the CLI runs the named jobs: see _run_job)."""
    return dg.materialize(
        [*all_assets, *all_checks],
        selection=selection,
        partition_key=partition,
        instance=inst,
        resources=resources(settings) if settings is not None else defs.resources,
        run_config=_run_config(verbose, ops),
        raise_on_error=False,
        tags=_tags(partition),
    )


def _run_job(
    inst: dg.DagsterInstance,
    job: str,
    partition: str | None,
    verbose: bool,
    ops: dict | None = None,
    settings: Settings | None = None,
    only: list[str] | None = None,
    days: tuple[str, str] | None = None,
):
    """A run of one of the named jobs (traffic, simulate_candidate, score_forecast), in this process:
    listed under its job's name, tagged with its candidate and what it evaluated with, re-executable
    from the UI."""
    # bound to the run's own settings (a job's resources must match its assets' by reference)
    d = defs
    if settings is not None:
        jobs = [traffic, simulate_candidate, score_forecast]
        d = dg.Definitions(assets=all_assets, asset_checks=all_checks, jobs=jobs, resources=resources(settings))
    tags = _tags(partition) | evaluation_tags(settings)
    if days and days[0] != days[1]:  # a range of days in one run (the daily assets' single-run backfill policy)
        tags |= {ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[1]}
    elif days:
        partition = days[0]
    return d.resolve_job_def(job).execute_in_process(
        run_config=_run_config(verbose, ops),
        instance=inst,
        partition_key=partition,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(k) for k in only] if only else None,
        tags=tags,
    )


def run_traffic(
    inst: dg.DagsterInstance,
    verbose: bool = False,
    settings: Settings | None = None,
    sample_only: bool = False,
    days: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """The traffic job for the given days (default: those traffic_plan says are new or changed), one run
    per range of consecutive days, the last with the sample and the seeds (a run of only those when no
    day is to be done); only the sample when sample_only. Returns the last run, or the first that failed."""
    if sample_only:
        return _run_job(inst, traffic.name, None, verbose, settings=settings, only=["sample"])
    todo = days if days is not None else traffic_plan(inst, settings)["todo"]
    spans = dd.ranges(todo)
    for i, span in enumerate(spans):
        last = i == len(spans) - 1
        res = _run_job(
            inst, traffic.name, None, verbose, settings=settings, only=None if last else list(DAILY), days=span
        )
        if last or not res.success:
            return res
    rest = [k.to_user_string() for k in defs.resolve_job_def(traffic.name).asset_layer.executable_asset_keys]
    return _run_job(inst, traffic.name, None, verbose, settings=settings, only=[k for k in rest if k not in DAILY])


def traffic_plan(inst: dg.DagsterInstance, settings: Settings | None = None) -> dict:
    """Which days the traffic job has to materialise: those whose logs are new or changed since their
    ingest was recorded, and, within the sample's window, those whose redaction settings changed
    (deploysim.pipeline.index_logs reads only new or changed log files). Days outside the partitions
    (before DEPLOYSIM_TRAFFIC_START, after today) are left out and listed."""
    from deploysim import pipeline
    from deploysim.settings import load

    s = settings or load()
    logs = pipeline.index_logs(s.logs_spec(), settings=s)["days"]
    valid = set(days_partitions.get_partition_keys(dynamic_partitions_store=inst))
    recorded = {a: _recorded_versions(inst, a, list(logs)) for a in DAILY}
    window = set(dd.window(max(logs), s.sample_days)) if logs else set()
    todo = []
    for day, plan in logs.items():
        if day not in valid:
            continue
        new = recorded["ingest"].get(day) != plan["version"]
        redo = day in window and recorded["redact"].get(day) != pipeline.redact_version(day, plan["version"], s)
        if new or redo:
            todo.append(day)
    return {
        "todo": todo,
        "days": logs,
        "outside": sorted(d for d in logs if d not in valid),
    }


def _recorded_versions(inst: dg.DagsterInstance, asset: str, days: list[str]) -> dict[str, str]:
    """day -> the version its latest materialisation of the asset recorded."""
    if not days:
        return {}
    flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=days)
    out: dict[str, str] = {}
    cursor = None
    while True:
        page = inst.fetch_materializations(flt, limit=1000, cursor=cursor)
        for rec in page.records:
            mat = rec.asset_materialization
            if mat is not None and mat.partition not in out:
                v = mat.metadata.get("version")
                out[str(mat.partition)] = str(getattr(v, "value", v))
        if not page.has_more:
            return out
        cursor = page.cursor


def replay_ops(deadline_s: float | None = None, shards: int = 1) -> dict:
    """The run config of the replay (its deadline and shards), under "ops" ({} for the defaults)."""
    cfg = {k: v for k, v in (("deadline_s", deadline_s), ("shards", shards if shards > 1 else None)) if v}
    return {"replay": {"config": cfg}} if cfg else {}


def run_candidate(
    inst: dg.DagsterInstance,
    name: str,
    verbose: bool = False,
    deadline_s: float | None = None,
    settings: Settings | None = None,
    look: int = 0,
    shards: int = 1,
):
    """One candidate's simulation; look >= 1 for round `look` of a sample grown until the gate decides.
    With shards > 1 the replay's shards run in parallel under Dagster's multiprocess executor (one
    process per step), else the run executes in this process."""
    add_partition(inst, name)
    ops = replay_ops(deadline_s, shards)
    if look:
        ops["estimate"] = {"config": {"look": look}}
    if shards > 1:
        return _run_job_multiprocess(inst, name, verbose, ops, settings, max_concurrent=shards)
    return _run_job(inst, simulate_candidate.name, name, verbose, ops or None, settings=settings)


def simulate_candidate_job() -> dg.JobDefinition:
    """The candidate job of the code location, for dg.reconstructable: each step's process loads it."""
    return defs.resolve_job_def(simulate_candidate.name)


def _run_job_multiprocess(
    inst: dg.DagsterInstance,
    partition: str,
    verbose: bool,
    ops: dict,
    settings: Settings | None,
    max_concurrent: int,
) -> JobExecutionResult:
    """The candidate job under the multiprocess executor, from this process: the run's settings go to
    the step processes as the settings resource's run config (DEPLOYSIM_HOME through the environment)."""
    from orchestration.jobs import executor
    from orchestration.resources import Settings as SettingsResource

    if executor() is not None:
        raise ValueError(
            "--shards runs the steps in processes on this machine, with Dagster's default executor: "
            "unset DEPLOYSIM_EXECUTOR, or launch on the deployment with --dagster-url"
        )
    run_config = _run_config(verbose, ops or None)
    run_config["execution"] = {"config": {"multiprocess": {"max_concurrent": max_concurrent}}}
    if settings is not None:
        fields = SettingsResource.of(settings).model_dump()
        run_config["resources"] = {"settings": {"config": {k: v for k, v in fields.items() if v is not None}}}
    log = dagster_home() / "step-output" / f"{partition}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    with steps_output_to(log):
        return dg.execute_job(
            dg.reconstructable(simulate_candidate_job),
            instance=inst,
            run_config=run_config,
            tags=_tags(partition) | evaluation_tags(settings) | {"dagster/partition": partition},
        )


PROGRESS = re.compile(r"  \S.* \[[^\]]*\]: \d+/\d+ \(\d+%\)")  # assets.common.progress_logger's lines


@contextmanager
def steps_output_to(log: Path) -> Iterator[None]:
    """Send what the step processes write (they inherit this process's stdout and stderr: dbt's log,
    warnings) to `log`, and echo only the progress lines to this process's stdout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    stop = threading.Event()

    def echo() -> None:
        with open(log, errors="replace") as f, os.fdopen(os.dup(saved[0]), "w") as out:
            while True:
                line = f.readline()
                if line.endswith("\n") and PROGRESS.fullmatch(line.rstrip("\n")):
                    out.write(line)
                    out.flush()
                elif not line:
                    if stop.is_set():
                        return
                    time.sleep(0.2)

    tail = threading.Thread(target=echo, daemon=True)
    tail.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved[1:]):
            os.close(f)
        stop.set()
        tail.join(timeout=5)
        os.close(saved[0])


def fail_abandoned_runs(inst: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-process runs whose process ended without finishing them (kill -9, power loss).

    Call it only while holding the data directory's lock: then no other deploysim process runs."""
    live = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
    out = []
    for run in inst.get_runs(dg.RunsFilter(statuses=live, tags={CLI_TAG: "true"})):
        if run.tags.get("deploysim/pid") == str(os.getpid()):
            continue
        if run.tags.get(WHERE_TAG, _where()) != _where():
            continue  # another machine's or data directory's run: not under our lock
        inst.report_run_failed(
            run,
            message="the deploysim process running it ended before the run finished "
            "(killed or crashed); marked failed at the next start",
        )
        out.append(run.run_id)
    return out


def run_outcome(result: dg.ExecuteInProcessResult) -> dict:
    """What one run decided, from its own events only (never from files an older run left)."""
    return outcome(
        failed_checks(result), check_reasons(result), step_errors(result), materialized(result), result.run_id
    )


def outcome(failed: list[str], why: dict[str, str], errors: list[str], done: set[str], run_id: str) -> dict:
    """problems (steps or checks that failed for a reason other than the gate), whether the gate was
    built in the run, whether the gate blocked or left some behaviour undecided, and whether the
    decision was recorded; from a run's failed checks, their reasons, its step errors and the assets
    it materialised."""
    blocked = GATE_CHECK in failed
    verdicts = (GATE_CHECK, UNDECIDED_CHECK)
    problems = [f"check {c} failed" + (f": {why[c]}" if c in why else "") for c in failed if c not in verdicts]
    for line in errors:
        step = line.split(":", 1)[0]
        if blocked and step == GATE_STEP and "blocking asset check failed" in line:
            continue  # the gate said no: a verdict, not an error
        problems.append(line)
    return {
        "problems": problems,
        "gate_built": "release_gate" in done,
        "blocked": blocked,
        "undecided": UNDECIDED_CHECK in failed,
        "decided": "release_decision" in done,
        "run_id": run_id,
    }


def run_scorecard(
    inst: dg.DagsterInstance, name: str, verbose: bool = False, settings: Settings | None = None
) -> dg.ExecuteInProcessResult:
    add_partition(inst, name)
    return _run_job(inst, score_forecast.name, name, verbose, settings=settings)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    out = []
    for e in result.all_events:
        ev = e.event_specific_data
        if isinstance(ev, dg.AssetCheckEvaluation):
            if not ev.passed:
                out.append(f"{ev.asset_key.to_user_string()}:{ev.check_name}")
    return out


def check_reasons(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """check -> the description its failing evaluation gave (where it gave one)."""
    out = {}
    for e in result.all_events:
        ev = e.event_specific_data
        if isinstance(ev, dg.AssetCheckEvaluation):
            if not ev.passed and ev.description:
                out[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = ev.description
    return out


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step: the step and its error's first line (user code errors unwrapped)."""
    out = []
    for e in result.all_events:
        if isinstance(e.event_specific_data, StepFailureData):
            err = e.event_specific_data.error
            while (
                err is not None
                and err.cause is not None
                and "DagsterExecutionStepExecutionError" in (err.cls_name or "")
            ):
                err = err.cause
            msg = (err.message if err else "unknown error").strip().splitlines()[0]
            out.append(f"{e.step_key}: {msg}")
    return out
