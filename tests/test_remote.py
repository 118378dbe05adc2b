"""Runs launched on a Dagster deployment (issue 13, item 1): `dagster dev` (webserver and daemon) on
this project, the CLI launching the traffic and the candidate's job through its GraphQL API and run
queue, and exiting with the gate's code.

Real parts: `dagster dev` in a subprocess, the reference endpoint over HTTP on 127.0.0.1, demo logs,
dbt on DuckDB.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration import cli

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from deploysim_testkit.cli_home import small_home
    from orchestration.remote import Deployment

    home = tmp_path_factory.mktemp("remote")
    with small_home(home) as server:
        assert cli.main(["candidate", "add", "steady", "--base-url", server.base_url, "--model", "steady"]) == 0
        port = _free_port()
        log = (home / "dagster-dev.log").open("w")
        dagster = Path(sys.executable).parent / "dagster"
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while not Deployment(url).ready("traffic"):  # the webserver is up and has loaded the code
                assert proc.poll() is None, (home / "dagster-dev.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "dagster dev did not load the code in 240 s"
                time.sleep(1)
            yield {"url": url, "home": home}
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
            log.close()


def test_run_on_the_deployment_goes_through_its_queue_and_exits_with_the_gate(deployment, capsys):
    import dagster as dg

    from deploysim import runs
    from orchestration.runner import CLI_TAG, instance

    code = cli.main(["run", "steady", "--dagster-url", deployment["url"], "--shards", "2"])
    out = capsys.readouterr().out
    assert code in (cli.EXIT_PASS, cli.EXIT_INCONCLUSIVE), out  # steady never fails; 60 conversations rarely decide
    assert "queued on the deployment" in out and "harmful_compliance" in out
    assert "✓ replay" in out  # progress: each step as it finishes

    inst = instance()
    last = runs.last("steady")
    run = inst.get_run_by_id(last["run_id"])
    assert run.job_name == "simulate_candidate" and run.tags["dagster/partition"] == "steady"
    assert CLI_TAG not in run.tags  # launched by the deployment, not in this process
    want = {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_SUCCESS}
    deadline = time.monotonic() + 60
    while True:  # read the run's event log again until it shows both (a SQLite reader can lag the writers)
        records = inst.get_records_for_run(run.run_id).records
        kinds = {r.event_log_entry.dagster_event.event_type for r in records if r.event_log_entry.dagster_event}
        if want <= kinds or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert want <= kinds, sorted(k.value for k in kinds)
    # the replay's two shards ran as steps of their own under the deployment's executor
    steps = {r.event_log_entry.step_key for r in records if r.event_log_entry.step_key}
    assert {"replay.replay_shard[shard_0]", "replay.replay_shard[shard_1]"} <= steps, sorted(steps)
    assert inst.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    traffic = inst.get_runs(dg.RunsFilter(job_name="traffic"))
    assert traffic and traffic[0].status == dg.DagsterRunStatus.SUCCESS


def test_bad_url_and_local_only_flags_are_clear_errors(deployment, capsys):
    assert cli.main(["run", "steady", "--dagster-url", "ftp://x"]) == cli.EXIT_ERROR
    assert "http(s) URL" in capsys.readouterr().out
    port = _free_port()
    assert cli.main(["run", "steady", "--skip-traffic", "--dagster-url", f"http://127.0.0.1:{port}"]) == cli.EXIT_ERROR
    assert "did not answer" in capsys.readouterr().out
    assert cli.main(["run", "steady", "--dagster-url", deployment["url"], "--sample-size", "50"]) == cli.EXIT_ERROR
    assert "--sample-size cannot be used with --dagster-url" in capsys.readouterr().out
