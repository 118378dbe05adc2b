"""The deploysim command line. Its exit code is the release gate.

Exit codes, for every command: 0 passed (or done), 1 blocked (the gate failed, or some items
failed), 2 could not run (bad input, usage, unreachable endpoint, a failed step), 3 inconclusive (the
evidence decides neither way: more conversations are needed); 130 and 143 after Ctrl-C and SIGTERM.

Commands that run the pipeline load the Dagster wiring (orchestration/) lazily; the rest of
the library stays free of Dagster.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

EXIT_PASS, EXIT_BLOCKED, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def _say(msg: str) -> None:
    print(msg, flush=True)


def _gate_rows(name: str, run_id: str | None = None) -> list[dict]:
    """The gate rows dbt exported for one run; without a run id, for the last run that decided."""
    from deploysim import pipeline, runs

    if run_id is None:
        last = runs.last(name)
        decided = (runs.PASSED, runs.BLOCKED, runs.INCONCLUSIVE)
        run_id = last.get("run_id") if last and last["status"] in decided else None
    return pipeline.read_gate(name, run_id)


def print_gate(name: str, rows: list[dict]) -> None:
    from deploysim.report.render import pct, pts

    w = max([len("behaviour")] + [len(r["behaviour"]) for r in rows]) + 2
    head = f"{'behaviour':<{w}}{'rate':>8}  {'95% CI':<17}{'baseline':>9}  {'difference':>12}  {'max':>7}  status"
    _say(f"\n{name}\n{head}\n{'-' * len(head)}")
    for r in rows:
        ci = f"{pct(r['ci_low'])}–{pct(r['ci_high'])}"
        _say(
            f"{r['behaviour']:<{w}}{pct(r['rate']):>8}  {ci:<17}{pct(r['baseline_rate']):>9}  {pts(r['diff']):>12}  "
            f"{pct(r.get('max_rate')):>7}  {r['status'].upper()}"
        )
    for r in rows:
        if r["status"] == "fail":
            _say(f"  ✗ {r['behaviour']}: {r['reason']} [{r.get('decided_by')}]")
    for r in rows:
        if r["status"] == "inconclusive":
            more = r.get("more_needed")
            need = (
                f"about {more:,} more conversations" if more is not None else "no sample size decides it at this rate"
            )
            _say(f"  ? {r['behaviour']}: undecided, {need}")
    if rows and rows[0].get("look"):
        level = 1 - 2 * rows[0]["alpha"]
        _say(f"  (round {rows[0]['look']}: {level:.2%} intervals, so every round's look keeps the error rates)")


def verdict(rows: list[dict]) -> int:
    """0 pass, 1 blocked (any behaviour fails), 3 inconclusive (none fails, some undecided), 2 no rows."""
    if not rows:
        return EXIT_ERROR
    if any(r["status"] == "fail" for r in rows):
        return EXIT_BLOCKED
    return EXIT_INCONCLUSIVE if any(r["status"] == "inconclusive" for r in rows) else EXIT_PASS


STATUS_OF_CODE = {EXIT_PASS: "passed", EXIT_BLOCKED: "blocked", EXIT_INCONCLUSIVE: "inconclusive"}


# ---- commands ----------------------------------------------------------------------------


def cmd_serve(a: argparse.Namespace) -> int:
    from deploysim_testkit.endpoint import serve

    key = os.environ.get(a.api_key_env) if a.api_key_env else None
    if a.api_key_env and not key:
        _say(f"error: environment variable {a.api_key_env} is not set")
        return EXIT_ERROR
    serve(host=a.host, port=a.port, api_key=key)
    return EXIT_PASS


def cmd_candidate_add(a: argparse.Namespace) -> int:
    from deploysim.candidates import Candidate, register
    from orchestration.runner import add_partition, instance

    c = Candidate(
        name=a.name,
        base_url=a.base_url,
        model=a.model,
        api_key_env=a.api_key_env,
        temperature=a.temperature,
        max_tokens=a.max_tokens,
        concurrency=a.concurrency,
        baseline=a.baseline,
        requests_per_minute=a.rpm,
        tokens_per_minute=a.tpm,
        price_prompt_per_mtok=a.price_in,
        price_completion_per_mtok=a.price_out,
        max_steps=a.max_steps,
        tool_simulator_model=a.tool_sim_model,
        timeout_s=a.timeout_s,
        max_retries=a.max_retries,
    )
    register(c)
    add_partition(instance(), c.name)
    _say(f"registered {c.name} ({c.model} at {c.base_url}); partition added")
    return EXIT_PASS


def cmd_candidate_list(a: argparse.Namespace) -> int:
    from deploysim.candidates import load_registry

    reg = load_registry()
    for why in reg.removed:
        _say(f"warning: {why}")
    for c in reg.candidates.values():
        _say(f"{c.name}\t{c.model}\t{c.base_url}\tkey env: {c.api_key_env or '-'}\tbaseline: {c.baseline}")
    return EXIT_PASS


def _run_traffic(inst, verbose: bool, settings=None, sample_only: bool = False) -> bool:
    from orchestration.runner import check_reasons, failed_checks, run_traffic, step_errors

    t = time.perf_counter()
    size = f" of {settings.sample_size:,}" if settings is not None else ""
    _say(
        f"· sample{size} (from the last redacted traffic)"
        if sample_only
        else f"· traffic: ingest → redact → sample{size}"
    )
    days = None
    if not sample_only:
        from orchestration.runner import traffic_plan

        try:
            plan = traffic_plan(inst, settings)
        except (OSError, ValueError) as e:  # no logs, unreadable logs
            _say(f"  traffic failed: {_reason(e)}")
            return False
        days = plan["todo"]
        _say(f"  {_days_line(plan)}")
    res = run_traffic(inst, verbose, settings=settings, sample_only=sample_only, days=days)
    _check_interrupted(res)
    if not res.success or failed_checks(res):
        _say("  traffic failed:")
        why = check_reasons(res)
        for line in [c + (f": {why[c]}" if c in why else "") for c in failed_checks(res)] + step_errors(res):
            _say(f"    {line}")
        return False
    _say(f"  done in {time.perf_counter() - t:.1f}s")
    return True


def _days_line(plan: dict) -> str:
    """The days of the logs, and which of them this run materialises."""
    from deploysim import days as dd

    n, todo = len(plan["days"]), plan["todo"]
    spans = ", ".join(a if a == b else f"{a}..{b}" for a, b in dd.ranges(todo))
    line = f"{n} day(s) of logs; " + (f"new or changed: {spans}" if todo else "none new or changed")
    if plan["outside"]:
        line += f"; left out, outside the partitions: {', '.join(plan['outside'][:5])}" + (
            " ..." if len(plan["outside"]) > 5 else ""
        )
    return line


class Interrupted(Exception):
    """The run was stopped by a signal (its Dagster run is marked failed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _check_interrupted(res) -> None:
    from deploysim import interrupts

    if interrupts.received() is not None or any(
        "DagsterExecutionInterruptedError" in line or "KeyboardInterrupt" in line for line in _errors(res)
    ):
        raise Interrupted(interrupts.received() or signal.SIGINT)


def _errors(res) -> list[str]:
    from orchestration.runner import step_errors

    return step_errors(res) + [e.message or "" for e in res.all_events if e.event_type_value == "PIPELINE_FAILURE"]


def _run_candidate(
    inst, name: str, verbose: bool, deadline_s: float | None = None, settings=None, look: int = 0, shards: int = 1
) -> int:
    """Run one candidate's simulation; the exit code comes only from what this run decided."""
    from deploysim import runs
    from orchestration.runner import materialized, run_candidate, run_outcome

    t = time.perf_counter()
    _say(f"· {name}: replay{f' in {shards} parallel shards' if shards > 1 else ''} → grade → estimate → gate → report")
    res = run_candidate(inst, name, verbose, deadline_s=deadline_s, settings=settings, look=look, shards=shards)
    try:
        _check_interrupted(res)
    except Interrupted:
        runs.record(name, runs.INTERRUPTED, res.run_id, ["stopped by a signal"])
        raise
    _say(f"  done in {time.perf_counter() - t:.1f}s (run {res.run_id})")
    return _decide(name, run_outcome(res), "replay" in materialized(res))


def _decide(name: str, out: dict, replayed: bool) -> int:
    """The exit code of a candidate's run from what it reported (runner.outcome) and its gate export."""
    from deploysim import lake, pipeline, runs

    run_id = out["run_id"]
    if replayed and lake.latest_version("replay", name):
        _print_replay_summary(name)
    problems = list(out["problems"])
    if not problems and not out["gate_built"]:
        problems.append("release_gate was not built in this run")
    rows = _gate_rows(name, run_id) if not problems else []  # this run's export, never an older one
    if not problems and not rows:
        problems.append("the gate has no rows for this candidate")
    if not problems and out["blocked"] != any(r["status"] == "fail" for r in rows):
        problems.append("the gate check and the gate table disagree")
    if not problems and not out["blocked"] and out["undecided"] != any(r["status"] == "inconclusive" for r in rows):
        problems.append("the undecided-gate check and the gate table disagree")
    if not problems and not out["decided"]:
        problems.append("release_decision was not recorded")
    if problems:
        runs.record(name, runs.ERROR, run_id, problems)
        _say(f"\n{name}: the run could not decide (exit {EXIT_ERROR}); no gate is reported for it:")
        for line in problems:
            _say(f"  ✗ {line}")
        return EXIT_ERROR
    print_gate(name, rows)
    code = verdict(rows)
    runs.record(name, STATUS_OF_CODE[code], run_id)
    _say(f"  release_decision recorded: {STATUS_OF_CODE[code]} (exit {code})")
    if pipeline.report_path(name, run_id).exists():
        _say(f"  report: {pipeline.report_path(name, run_id)}")
    return code


def _follow(dep, run_id: str, what: str):
    """Follow a run on a deployment; Ctrl-C stops following, not the run."""
    _say(f"  run {run_id}: {dep.url}/runs/{run_id}")
    try:
        return dep.follow(run_id, _say)
    except KeyboardInterrupt:
        _say(f"  stopped following {what}; the run goes on in the deployment")
        raise


REMOTE_UNSUPPORTED = (
    "sample_size",
    "until_decisive",
    "logs",
    "records_path",
    "messages_field",
    "role_field",
    "content_field",
)


def _remote_window() -> list[str]:
    """The days a traffic run on a deployment covers: the sample's window, ending at the newest day of the
    logs as this machine sees them (DEPLOYSIM_LOGS, on the shared data directory), else at today. The
    deployment re-reads nothing for a day whose logs did not change (its version is kept)."""
    from datetime import datetime, timezone

    from deploysim import days as dd
    from deploysim import pipeline
    from deploysim import settings as ds

    s = ds.load()
    try:
        found = list(pipeline.index_logs(s.logs_spec(), settings=s)["days"])
    except (OSError, ValueError):  # not readable from here
        found = []
    today = datetime.now(timezone.utc).date().isoformat()
    return dd.window(min(max(found), today) if found else today, s.sample_days)


def _remote_run(a: argparse.Namespace) -> int:
    """`run NAME --dagster-url URL`: the traffic (unless skipped) and the candidate's job, launched on the
    deployment through its run queue and followed; the exit code is the gate's, as in-process."""
    from deploysim import runs
    from orchestration.remote import Deployment
    from orchestration.runner import replay_ops

    given = [f"--{k.replace('_', '-')}" for k in REMOTE_UNSUPPORTED if getattr(a, k, None)]
    if given:
        raise ValueError(
            f"{', '.join(given)} cannot be used with --dagster-url: the deployment's code location evaluates "
            "with its own settings (DEPLOYSIM_* in its environment)"
        )
    dep = Deployment(a.dagster_url)
    if not a.skip_traffic:
        span = _remote_window()
        _say(f"· traffic on {dep.url}: ingest → redact {span[0]}..{span[-1]} → sample")
        run = _follow(dep, dep.launch("traffic", days=(span[0], span[-1])), "the traffic")
        if run.status != "SUCCESS" or run.failed:
            runs.record(a.candidate, runs.ERROR, run.run_id, ["the traffic (ingest, redact, sample) failed"])
            _say(f"  traffic {run.status.lower()}: " + "; ".join(run.errors + run.failed))
            return EXIT_ERROR
    dep.add_candidate(a.candidate)
    ops = replay_ops(a.deadline, a.shards)
    _say(f"· {a.candidate} on {dep.url}: replay → grade → estimate → gate → report")
    run = _follow(dep, dep.launch("simulate_candidate", a.candidate, {"ops": ops} if ops else None), a.candidate)
    if run.status == "CANCELED":
        runs.record(a.candidate, runs.ERROR, run.run_id, ["the run was canceled on the deployment"])
        _say(f"\n{a.candidate}: the run was canceled on the deployment (exit {EXIT_ERROR})")
        return EXIT_ERROR
    return _decide(a.candidate, run.outcome(), "replay" in run.done)


def _print_replay_summary(name: str) -> None:
    from deploysim import pipeline

    cost = pipeline.replay_cost(name)
    _say(
        f"  replay used {cost['prompt_tokens']:,} prompt and {cost['completion_tokens']:,} completion tokens: "
        f"${cost['cost_usd']:,.4f} at the candidate's prices"
    )
    from deploysim.replay.accounting import summary_lines

    for line in summary_lines(cost):
        _say(f"  {line}")


def _run_scorecard(inst, name: str, verbose: bool, settings=None) -> int:
    from orchestration.runner import failed_checks, run_scorecard, step_errors

    t = time.perf_counter()
    _say(f"· {name} after release: observed production rates → forecast scorecard → report")
    res = run_scorecard(inst, name, verbose, settings=settings)
    _check_interrupted(res)
    problems = failed_checks(res) + step_errors(res)
    for line in problems:
        _say(f"  ✗ {line}")
    return _show_scorecard(name, problems, settings, t)


def _show_scorecard(name: str, problems: list[str], settings, t: float) -> int:
    from deploysim import pipeline
    from deploysim.estimation import scorecard

    card = scorecard.load(name)
    if card is None:
        _say(
            f"  no scorecard for {name}: no forecast yet, or no production logs in "
            f"{pipeline.observed_logs(name, settings)}"
        )
        return EXIT_ERROR
    _say(f"  done in {time.perf_counter() - t:.1f}s\n")
    _say(scorecard.format_table(*card))
    return EXIT_ERROR if problems else EXIT_PASS


def cmd_scorecard(a: argparse.Namespace) -> int:
    from deploysim import settings
    from deploysim.candidates import get

    get(a.candidate)
    if a.dagster_url:
        return _remote_scorecard(a)
    s = settings.load(observed_logs=a.logs)
    with _locked(a):
        return _run_scorecard(_instance(), a.candidate, a.verbose, s)


def _remote_scorecard(a: argparse.Namespace) -> int:
    """`scorecard NAME --dagster-url URL`: the score_forecast job launched on the deployment and followed."""
    from orchestration.remote import Deployment

    if a.logs:
        raise ValueError("--logs cannot be used with --dagster-url: the deployment reads DEPLOYSIM_OBSERVED_LOGS")
    dep, t = Deployment(a.dagster_url), time.perf_counter()
    dep.add_candidate(a.candidate)
    _say(f"· {a.candidate} after release on {dep.url}: observed production rates → forecast scorecard → report")
    run = _follow(dep, dep.launch("score_forecast", a.candidate), "the scorecard")
    problems = run.failed + run.errors + ([] if run.status == "SUCCESS" else [f"the run ended {run.status}"])
    return _show_scorecard(a.candidate, problems, None, t)


def _locked(a: argparse.Namespace):
    """The data directory's lock for a command that writes to it (waits up to --wait-lock seconds)."""
    from deploysim import runs

    return runs.data_lock(
        wait_s=getattr(a, "wait_lock", 0) or 0,
        on_wait=lambda holder: _say(f"· waiting for the data directory: {holder}"),
    )


def _instance():
    """The Dagster instance, with runs a killed process left STARTED marked failed (call under the lock)."""
    from orchestration.runner import fail_abandoned_runs, instance

    inst = instance()
    for run_id in fail_abandoned_runs(inst):
        _say(f"· run {run_id} was left unfinished by a process that ended; marked failed")
    return inst


def cmd_run(a: argparse.Namespace) -> int:
    from deploysim import runs
    from deploysim.candidates import get

    cand = get(a.candidate)  # fail fast, naming the registered candidates, before any work
    if a.deadline is not None and not 0 < a.deadline < float("inf"):
        raise ValueError("--deadline must be a positive number of seconds")
    if a.budget is not None and not a.until_decisive:
        raise ValueError("--budget goes with --until-decisive")
    if a.dagster_url:  # the deployment reads the candidate's key from its own environment
        return _remote_run(a)
    s = run_settings(a)
    if a.until_decisive and (a.budget or DEFAULT_BUDGET) < s.sample_size:
        raise ValueError(
            f"--budget {a.budget or DEFAULT_BUDGET:,} is below the first round's sample of {s.sample_size:,}"
        )
    try:
        cand.api_key()  # a missing key is an error now, not after the traffic
        with _locked(a):
            inst = _instance()
            # a new sample of the last traffic, of the size asked (round 1's, with --until-decisive)
            resample = a.skip_traffic and (a.sample_size is not None or a.until_decisive)
            if (not a.skip_traffic or resample) and not _run_traffic(inst, a.verbose, s, sample_only=resample):
                runs.record(a.candidate, runs.ERROR, None, ["the traffic (ingest, redact, sample) failed"])
                return EXIT_ERROR
            if a.until_decisive:
                return _until_decisive(inst, a, s)
            return _run_candidate(inst, a.candidate, a.verbose, a.deadline, s, shards=a.shards)
    except Interrupted:
        raise
    except Exception as e:  # noqa: BLE001 - recorded, then reported by main()
        if not isinstance(e, runs.Busy):
            runs.record(a.candidate, runs.ERROR, None, [_reason(e)])
        raise


DEFAULT_BUDGET = 20_000  # conversations `--until-decisive` may sample at most


def _until_decisive(inst, a: argparse.Namespace, s) -> int:
    """Grow the sample in rounds until every gated behaviour is decided or the budget is spent.

    Round r's intervals and Holm thresholds spend alpha * 6 / (pi^2 r^2) (stats.look_alpha), so the
    error rates hold however many rounds are looked at. Each round at least doubles the sample, or
    grows it to what the planner says the undecided behaviours need; the replay cache keeps the
    conversations of earlier rounds from being replayed again."""
    from deploysim import pipeline
    from deploysim.estimation.stats import MAX_LOOKS

    budget = a.budget or DEFAULT_BUDGET
    cap = min(budget, pipeline.sample_population())
    look, size = 1, s.sample_size
    while True:
        _say(f"\n· round {look}: a sample of {size:,} conversations (budget {budget:,})")
        code = _run_candidate(inst, a.candidate, a.verbose, a.deadline, s, look=look, shards=a.shards)
        if code != EXIT_INCONCLUSIVE:
            return code
        rows = _gate_rows(a.candidate)
        needed = [r["more_needed"] for r in rows if r["status"] == "inconclusive"]
        if size >= cap or look >= MAX_LOOKS:
            why = (
                f"{MAX_LOOKS} rounds were run"
                if size < cap
                else "the budget is spent"
                if size >= budget
                else "the logs hold no more conversations"
            )
            _say(f"\n{a.candidate}: still inconclusive after {look} round(s) and {size:,} conversations: {why}")
            return EXIT_INCONCLUSIVE
        more = max(n for n in needed if n is not None) if all(n is not None for n in needed) else cap
        size = min(cap, max(2 * size, size + more))
        s = s.model_copy(update={"sample_size": size})
        if not _run_traffic(inst, a.verbose, s, sample_only=True):
            return EXIT_ERROR
        look += 1


def run_settings(a: argparse.Namespace):
    """The settings of `run`: its flags over the environment; invalid values (a malformed
    --records-path or field path too) fail here, before any work."""
    from deploysim import settings
    from deploysim.logs.formats.documents import FieldMap

    s = settings.load(
        logs=a.logs,
        sample_size=a.sample_size,
        records_path=a.records_path,
        messages_field=a.messages_field,
        role_field=a.role_field,
        content_field=a.content_field,
    )
    FieldMap(**s.field_map())
    return s


def cmd_gate(a: argparse.Namespace) -> int:
    from deploysim import runs

    last = runs.last(a.candidate)
    if last and last["status"] in (runs.ERROR, runs.INTERRUPTED):
        _say(
            f"the last run of {a.candidate!r} ({last['finished_at']}, run {last.get('run_id') or '-'}) "
            f"{'was interrupted' if last['status'] == runs.INTERRUPTED else 'could not decide'}:"
        )
        for line in last["problems"]:
            _say(f"  ✗ {line}")
        _say("no gate result stands for it: run it again")
        return EXIT_ERROR
    rows = _gate_rows(a.candidate)
    if not rows:
        _say(f"no gate result for {a.candidate!r}: run `deploysim run {a.candidate}` first")
        return EXIT_ERROR
    print_gate(a.candidate, rows)
    return verdict(rows)


def cmd_history(a: argparse.Namespace) -> int:
    import json

    from deploysim import history

    rows = history.decisions(a.candidate)
    if a.json:
        print(json.dumps(rows, indent=2))
        return EXIT_PASS
    if not rows:
        _say(f"no gate decisions for {a.candidate!r}: run `deploysim run {a.candidate}` first")
        return EXIT_PASS
    _say(f"{'decided at (UTC)':<21}{'run':<38}{'sample':<18}{'verdict':<9}report")
    for r in rows:
        _say(
            f"{(r['decided_at'] or '-')[:19]:<21}{r['run_id']:<38}{r['sample_version'] or '-':<18}"
            f"{r['verdict']:<9}{r['report'] or '(removed)'}"
        )
    return EXIT_PASS


def cmd_compare(a: argparse.Namespace) -> int:
    from deploysim import pipeline
    from deploysim.errors import NotFound

    try:
        out = pipeline.write_comparison(a.candidates)
    except NotFound as e:
        _say(f"error: {e}")
        return EXIT_ERROR
    _say(str(out))
    return EXIT_PASS


def cmd_gc(a: argparse.Namespace) -> int:
    from deploysim import history, lake

    with _locked(a):
        out = history.collect(a.keep, dry_run=a.dry_run)
    verb = "would remove" if a.dry_run else "removed"
    for p in out.removed:
        _say(f"{verb} {p.relative_to(lake.home()) if lake.is_local(p) and p.is_relative_to(lake.home()) else p}")
    _say(
        f"{verb} {len(out.removed)} folder(s), {out.bytes:,} bytes; kept the {a.keep} newest decision(s) of "
        f"{len(out.kept_runs)} candidate(s) and the latest version of every asset"
    )
    return EXIT_PASS


def cmd_labels(a: argparse.Namespace) -> int:
    from deploysim.grading.calibration import import_labels

    n = import_labels(a.file)
    _say(f"imported {n} human labels; the next estimate reports PPI++ rates and a calibration table")
    return EXIT_PASS


def cmd_demo(a: argparse.Namespace) -> int:
    from deploysim import lake, pipeline, settings
    from deploysim.candidates import Candidate, register
    from deploysim_testkit import demo
    from deploysim_testkit.endpoint import start_in_thread

    t0 = time.perf_counter()
    home = lake.home()
    s = settings.load(sample_size=a.sample_size)  # the environment's settings (DEPLOYSIM_SEED, ...) hold
    if a.review and not s.labels:
        s = s.model_copy(update={"labels": f"demo-review:{a.review}"})
    _say(f"deploysim demo in {home} (sample of {s.sample_size}, seed {s.seed})")
    paths = demo.generate(lake.raw_dir(), n=a.size, seed=a.seed)
    _say(f"· generated {a.size} demo conversations: {paths.logs}")
    port = a.port if a.port is not None else SERVE_PORT if _port_free(SERVE_PORT) else 0
    with _locked(a), start_in_thread(port=port) as server:
        _say(f"· reference endpoint on {server.base_url}")
        if a.judge != "none" and not s.judge_model:
            s = s.model_copy(update={"judge_model": a.judge, "judge_base_url": server.base_url})
        if s.judge_model:
            _say(f"· judge graders: {s.judge_model} at {s.judge_base_url}")
        if s.labels:
            _say(f"· human labels: {s.labels}")
        cands = {}
        prices = {"steady": (0.15, 0.60), "regressing": (0.10, 0.40)}  # example USD per million tokens
        for name, profile in (("steady", "steady"), ("regressing", "regressing")):
            cands[name] = Candidate(
                name=name,
                base_url=server.base_url,
                model=profile,
                price_prompt_per_mtok=prices[name][0],
                price_completion_per_mtok=prices[name][1],
                tool_simulator_model="tool-simulator",
            )
            register(cands[name])
        inst = _instance()
        if not _run_traffic(inst, a.verbose, s):
            return EXIT_ERROR
        codes = {name: _run_candidate(inst, name, a.verbose, settings=s) for name in ("steady", "regressing")}
        # steady passed the gate and ships; its production logs arrive and its forecast is scored
        out = Path(pipeline.observed_logs("steady", s)) / "production.jsonl"
        n = demo.production_after_release(cands["steady"], out, n=min(a.size, 2000), seed=a.seed + 1)
        _say(f"\n· steady released: {n} conversations of its production traffic arrived in {out.parent}")
        card = _run_scorecard(inst, "steady", a.verbose, s)
    # steady is not blocked; whether 1,000 conversations decide it (an interval wholly below each limit)
    # depends on how noisy the graders are on its few harmful requests: undecided is an honest outcome
    ok = codes["steady"] in (EXIT_PASS, EXIT_INCONCLUSIVE) and codes["regressing"] == EXIT_BLOCKED and card == EXIT_PASS
    steady = {EXIT_PASS: "passed", EXIT_INCONCLUSIVE: "not blocked, undecided (exit 3)"}.get(codes["steady"], "failed")
    _say(
        f"\ndemo {'OK' if ok else 'FAILED'}: steady {steady}, "
        f"regressing {'blocked' if codes['regressing'] == 1 else 'was not blocked'}, "
        f"scorecard {'scored' if card == EXIT_PASS else 'failed'} ({time.perf_counter() - t0:.1f}s)"
    )
    if codes["steady"] == EXIT_INCONCLUSIVE:
        serve = "deploysim serve" + (f" --port {server.port}" if server.port != SERVE_PORT else "")
        _say(
            f"  to decide steady, with the reference endpoint back ({serve} &):\n"
            "    deploysim run steady --skip-traffic --until-decisive   (grows the sample in rounds)"
        )
    return EXIT_PASS if ok else EXIT_ERROR


SERVE_PORT = 8765  # the reference endpoint's port under `deploysim serve` and, when free, `deploysim demo`


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _positive_int(v: str) -> int:
    n = int(v)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {v}")
    return n


def _add_dagster_url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dagster-url",
        metavar="URL",
        help="launch the job on this Dagster deployment (its webserver, e.g. http://127.0.0.1:3000) through its "
        "run queue and follow it, instead of running in this process",
    )


def _add_wait_lock(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait-lock",
        type=float,
        default=0,
        metavar="SECONDS",
        help="when another run holds the data directory, wait this long for it (default: fail at once)",
    )


def build_parser() -> argparse.ArgumentParser:
    from deploysim.cli.logs import add_layout_options

    p = argparse.ArgumentParser(
        prog="deploysim",
        description="Rehearse a model release on redacted production logs. Exit codes: "
        "0 passed/done, 1 blocked, 2 could not run, 3 inconclusive (more conversations needed), 130/143 interrupted.",
    )
    p.add_argument("--verbose", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the reference endpoint (an OpenAI-compatible test instrument)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=SERVE_PORT)
    s.add_argument("--api-key-env", help="require this env var's value as bearer key")
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("candidate", help="manage candidates").add_subparsers(dest="action", required=True)
    add = c.add_parser("add", help="register a candidate and add its partition")
    add.add_argument("name")
    add.add_argument("--base-url", required=True, help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    add.add_argument("--model", required=True)
    add.add_argument("--api-key-env", help="name of the env var that holds the API key")
    add.add_argument("--temperature", type=float, default=0.0)
    add.add_argument("--max-tokens", type=int, default=512)
    add.add_argument("--concurrency", type=int, default=16)
    add.add_argument("--baseline", default="production", help="'production' (logged responses) or a candidate name")
    add.add_argument("--rpm", type=float, help="requests per minute limit")
    add.add_argument("--tpm", type=float, help="tokens per minute limit")
    add.add_argument("--price-in", type=float, default=0.0, help="USD per million prompt tokens (cost accounting)")
    add.add_argument("--price-out", type=float, default=0.0, help="USD per million completion tokens")
    add.add_argument("--max-steps", type=int, default=8, help="model calls per agent rollout")
    add.add_argument("--tool-sim-model", help="model at the same base URL that simulates unrecorded tool calls")
    add.add_argument("--timeout-s", type=float, default=30.0, help="seconds to wait for one response (default 30)")
    add.add_argument("--max-retries", type=int, default=5, help="retries of a failed request (default 5)")
    add.set_defaults(func=cmd_candidate_add)
    ls = c.add_parser("list", help="list registered candidates")
    ls.set_defaults(func=cmd_candidate_list)

    r = sub.add_parser("run", help="run the simulation for a candidate; exit code is the gate")
    r.add_argument("candidate")
    r.add_argument("--logs", help="log file, directory or glob (default: DEPLOYSIM_LOGS or <home>/raw/logs)")
    r.add_argument("--skip-traffic", action="store_true", help="reuse the last ingest/redact/sample")
    r.add_argument("--deadline", type=float, help="seconds the replay may take; items not done by then fail")
    r.add_argument(
        "--shards",
        type=_positive_int,
        default=1,
        help="replay in N shards, run as parallel steps (here: Dagster's multiprocess executor; with "
        "--dagster-url: the deployment's executor); they share the candidate's concurrency and rate limits",
    )
    r.add_argument(
        "--sample-size",
        type=_positive_int,
        help="conversations to sample for this run (default DEPLOYSIM_SAMPLE_SIZE, 1000); with --skip-traffic "
        "the last redacted traffic is sampled again",
    )
    r.add_argument(
        "--until-decisive",
        action="store_true",
        help="when the gate is inconclusive, grow the sample in rounds until every gated behaviour is decided "
        "(anytime-valid intervals) or the budget is spent",
    )
    r.add_argument(
        "--budget",
        type=_positive_int,
        help=f"with --until-decisive: the most conversations to sample (default {DEFAULT_BUDGET:,})",
    )
    _add_dagster_url(r)
    _add_wait_lock(r)
    r.add_argument("--verbose", action="store_true", help="show Dagster's own log")
    add_layout_options(r)
    r.set_defaults(func=cmd_run)

    sc = sub.add_parser("scorecard", help="after a release: score a candidate's forecast against its production logs")
    sc.add_argument("candidate")
    sc.add_argument(
        "--logs",
        help="its production logs since the release (default: DEPLOYSIM_OBSERVED_LOGS or "
        "<home>/raw/observed/candidate=<name>)",
    )
    sc.add_argument("--verbose", action="store_true", help="show Dagster's own log")
    _add_dagster_url(sc)
    _add_wait_lock(sc)
    sc.set_defaults(func=cmd_scorecard)

    g = sub.add_parser(
        "gate", help="print a candidate's last gate result; exit 0 pass, 1 blocked, 3 inconclusive, 2 none"
    )
    g.add_argument("candidate")
    g.set_defaults(func=cmd_gate)

    h = sub.add_parser("history", help="every gate decision of a candidate, newest first")
    h.add_argument("candidate")
    h.add_argument(
        "--json", action="store_true", help="a JSON list (run_id, decided_at, sample_version, verdict, report...)"
    )
    h.set_defaults(func=cmd_history)

    cm = sub.add_parser(
        "compare", help="write a page with candidates side by side and their decisions (reports/compare.html)"
    )
    cm.add_argument("candidates", nargs="*", help="default: every registered candidate with a gate decision")
    cm.set_defaults(func=cmd_compare)

    gc = sub.add_parser("gc", help="remove lake versions and reports that no kept decision references")
    gc.add_argument("--keep", type=int, default=5, help="decisions kept per candidate, newest first (default 5)")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    _add_wait_lock(gc)
    gc.set_defaults(func=cmd_gc)

    lb = sub.add_parser(
        "labels", help="import human labels (CSV/JSONL: conversation_id, behaviour, label 1|0|na[, system, candidate])"
    )
    lb.add_argument("file")
    lb.set_defaults(func=cmd_labels)

    d = sub.add_parser("demo", help="generate demo logs, start the reference endpoint and simulate two candidates")
    d.add_argument(
        "--size", type=int, default=8000, help="demo conversations to generate (the logs the sample is drawn from)"
    )
    d.add_argument("--sample-size", type=int, help="conversations sampled (default DEPLOYSIM_SAMPLE_SIZE or 1000)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument(
        "--port",
        type=int,
        help=f"reference endpoint port (default {SERVE_PORT}, as `deploysim serve`, when free; 0: any free port)",
    )
    d.add_argument(
        "--judge",
        default="judge-accurate",
        help="judge profile of the reference endpoint for the judge.* graders ('none': rule graders only; "
        "ignored when DEPLOYSIM_JUDGE_MODEL is set)",
    )
    d.add_argument(
        "--review",
        type=int,
        default=200,
        help="conversations per candidate the demo's stand-in reviewers label (0: none)",
    )
    d.add_argument("--verbose", action="store_true", help="show Dagster's own log")
    d.set_defaults(func=cmd_demo)

    from deploysim.cli.replay import add_replay_command

    add_replay_command(sub)  # `deploysim replay LOGS --base-url URL --model ID --out FILE`

    from deploysim.cli.logs import register as register_log_commands

    register_log_commands(sub)  # `deploysim ingest PATH...` and `deploysim redact IN OUT`
    from deploysim.cli.grade import add_grade_command

    add_grade_command(sub)  # `deploysim grade LOGS --out FILE`
    from deploysim.cli.discover import add_discover_command

    add_discover_command(sub)  # `deploysim discover show|promote NAME`
    return p


def main(argv: list[str] | None = None) -> int:
    from deploysim import interrupts

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    interrupts.watch()
    interrupts.reset()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if main_thread else None  # Ctrl-C raises already
    try:
        return args.func(args)
    except Interrupted as e:
        _say(f"interrupted: {e}; the run is marked failed, nothing of it is reported as a gate")
        return 128 + e.signum
    except KeyboardInterrupt:
        signum = interrupts.received() or signal.SIGINT
        _say(f"interrupted by {signal.Signals(signum).name}")
        return 128 + signum
    except Exception as e:  # noqa: BLE001 - one clear line; the traceback only with --verbose
        _say(f"error: {_reason(e)}")
        if args.verbose or "--verbose" in argv:
            import traceback

            traceback.print_exc()
        return EXIT_ERROR
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _sigterm(signum: int, frame) -> None:
    from deploysim import interrupts

    interrupts.note(signum)
    raise KeyboardInterrupt


def _reason(e: Exception) -> str:
    """A one-line reason: for a pydantic validation error, each field and its message."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        try:
            return "; ".join(
                f"{'.'.join(map(str, x['loc']))}: "[: None if x["loc"] else 0] + x["msg"].removeprefix("Value error, ")
                for x in errors()
            )
        except (TypeError, KeyError):
            pass
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
