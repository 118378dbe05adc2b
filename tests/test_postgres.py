"""The instance on PostgreSQL, and a candidate's run through the daemon's run queue (issue 13, item 2).

Real parts: a PostgreSQL server (DEPLOYSIM_TEST_PG_URL; `.ci/with-postgres` starts one), demo logs, the
reference endpoint over HTTP on 127.0.0.1, `dagster job launch` (QueuedRunCoordinator) and
`dagster-daemon run` as subprocesses. Under CI the server is required: without it this test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from orchestration import cli

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # one process per run: light on a small machine


@pytest.fixture(scope="module")
def pg_url():
    """A fresh database on the test server, dropped afterwards."""
    url = os.environ.get("DEPLOYSIM_TEST_PG_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("DEPLOYSIM_TEST_PG_URL is not set: CI must run the tests under .ci/with-postgres")
        pytest.skip("no PostgreSQL server (run under .ci/with-postgres)")
    import psycopg2

    name = f"deploysim_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _sql(url: str, query: str, *args) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def _files_under(path: Path):
    return [p for p in path.rglob("*") if p.is_file()]


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session and whatever it left running (the code servers it spawned)."""
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(2)  # its children's turn


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        _stop_group(proc)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_a_candidate_run_goes_through_the_queue_on_postgres(pg_url, tmp_path):
    import dagster as dg

    from deploysim_testkit.cli_home import small_home
    from orchestration import runner

    home = tmp_path / "home"
    password = urlsplit(pg_url).password or ""
    with small_home(home, DAGSTER_PG_URL=pg_url) as server:
        assert cli.main(["candidate", "add", "steady", "--base-url", server.base_url, "--model", "steady"]) == 0
        config = (home / "dagster" / "dagster.yaml").read_text()
        assert "env: DAGSTER_PG_URL" in config and "QueuedRunCoordinator" in config
        inst = runner.instance()
        assert type(inst.run_storage).__name__ == "PostgresRunStorage"
        assert type(inst.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(inst.run_coordinator).__name__ == "QueuedRunCoordinator"

        assert runner.run_traffic(inst).success  # in this process, recorded in Postgres

        run_id = str(uuid.uuid4())
        env = dict(os.environ)
        launch = _run(
            [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "simulate_candidate"]
            + ["--run-id", run_id, "--tags", json.dumps({"dagster/partition": "steady"})]
            + ["--config-json", json.dumps(IN_PROCESS)],
            env,
        )
        assert launch.returncode == 0, launch.stderr[-2000:]
        assert inst.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED  # waits for the daemon

        daemon_log = tmp_path / "daemon.log"
        with daemon_log.open("w") as log:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 900
                while time.monotonic() < deadline:
                    run = inst.get_run_by_id(run_id)
                    if run.is_finished or daemon.poll() is not None:
                        break
                    time.sleep(2)
            finally:
                _stop_group(daemon)

        run = inst.get_run_by_id(run_id)
        tail = daemon_log.read_text()[-3000:]
        assert run.status == dg.DagsterRunStatus.SUCCESS, f"{run.status}\n{tail}"
        assert run.tags["dagster/partition"] == "steady"

        # QUEUED -> SUCCESS, in order, as the run's events say
        events = [e.dagster_event.event_type_value for e in inst.all_logs(run_id) if e.dagster_event]
        states = [e for e in events if e.startswith("PIPELINE_")]
        assert states[0] == "PIPELINE_ENQUEUED" and states[-1] == "PIPELINE_SUCCESS", states
        assert "PIPELINE_START" in states and "PIPELINE_FAILURE" not in states, states
        done = {
            (e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition)
            for e in inst.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        assert {("replay", "steady"), ("release_gate", "steady"), ("report", "steady")} <= done

        # the rows are in PostgreSQL itself, the traffic run beside the queued one
        assert _sql(pg_url, "select status from runs where run_id = %s", run_id) == [("SUCCESS",)]
        assert _sql(pg_url, "select count(*) from runs where pipeline_name = 'traffic'") == [(1,)]
        assert not (home / "dagster" / "history").exists()  # no SQLite run storage beside it

        # the password is in no file the instance or the daemon wrote
        for path in [daemon_log, *_files_under(home / "dagster")]:
            assert password not in path.read_text(errors="replace"), path
