"""The deployment recipe (deploy/) and the instance's dagster.yaml (issue 13, items 2 and 6)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from orchestration import instance

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def lookup(tree, dotted: str):
    """tree["a"]["b"]..., descending into every item of a list; raises KeyError when a key is missing."""
    node = tree
    for key in dotted.split("."):
        if isinstance(node, list):
            node = [item[key] for item in node]
            if not node:
                raise KeyError(dotted)
            node = node[0]
        else:
            node = node[key]
    return node


def readme_keys() -> list[str]:
    """The values keys the README's "Scaling out" table promises (first column)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Scaling out", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Za-z][\w.-]*)` \|", section, flags=re.M)


def cmd() -> list[str]:
    [line] = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("CMD ")]
    return json.loads(line[len("CMD ") :])


def test_the_readme_keys_are_in_the_values_file():
    keys = readme_keys()
    assert len(keys) >= 8, keys
    v = values()
    for key in keys:
        lookup(v, key)  # KeyError names the missing key


def test_the_values_configure_the_code_location_postgres_and_the_queue():
    v = values()
    [dep] = lookup(v, "dagster-user-deployments.deployments")
    assert dep["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    assert dep["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {e["name"]: e.get("value") for e in dep["env"]}
    assert env["DEPLOYSIM_LAKE"].startswith("s3://") and "DEPLOYSIM_HOME" in env
    assert all(k.startswith(("DEPLOYSIM_", "AWS_")) for k in env)
    assert {"name": "deploysim-secrets"} in dep["envSecrets"]
    [mount] = dep["volumeMounts"]
    assert mount["mountPath"] == env["DEPLOYSIM_HOME"]
    assert v["postgresql"]["enabled"] is False and v["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in v["postgresql"]  # the password comes from the Secret only
    assert v["global"]["postgresqlSecretName"]
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    assert {"name": "deploysim-secrets"} in v["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    rc = v["dagsterDaemon"]["runCoordinator"]
    assert rc["enabled"] and rc["type"] == "QueuedRunCoordinator"
    assert rc["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == 1


def test_the_dockerfile_serves_the_module_the_values_name_on_their_port():
    args = cmd()
    assert args[:3] == ["dagster", "api", "grpc"]
    module = args[args.index("-m") + 1]
    port = int(args[args.index("-p") + 1])
    [dep] = lookup(values(), "dagster-user-deployments.deployments")
    assert dep["dagsterApiGrpcArgs"] == ["-m", module] and dep["port"] == port == 3030
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text and "EXPOSE 3030" in text
    assert "dbt parse" in text
    assert not any(ln.startswith("ENTRYPOINT") for ln in text.splitlines())  # the chart passes the command as args
    defs = importlib.import_module(module).defs  # importable, and it is the Definitions
    assert {"traffic", "simulate_candidate", "score_forecast"} <= {j.name for j in defs.jobs}


# ---- the instance's dagster.yaml ---------------------------------------------------------------


def test_sqlite_by_default_postgres_and_the_queue_with_dagster_pg_url(tmp_path, monkeypatch):
    monkeypatch.delenv(instance.PG_URL_ENV, raising=False)
    path = instance.ensure_config(tmp_path)
    assert yaml.safe_load(path.read_text()) == {"telemetry": {"enabled": False}}

    url = "postgresql://dagster:s3cr3t-pw@db.example.internal:5432/dagster"
    monkeypatch.setenv(instance.PG_URL_ENV, url)
    config = yaml.safe_load(instance.ensure_config(tmp_path).read_text())
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert "s3cr3t-pw" not in path.read_text() and "db.example.internal" not in path.read_text()

    monkeypatch.delenv(instance.PG_URL_ENV)  # back to SQLite: the file is deploysim's own
    assert "storage" not in yaml.safe_load(instance.ensure_config(tmp_path).read_text())


def test_an_earlier_default_is_replaced_and_a_hand_written_file_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(instance.PG_URL_ENV, "postgresql://u:p@h:5432/d")
    path = tmp_path / "dagster.yaml"
    path.write_text("telemetry:\n  enabled: false\n")  # what earlier versions wrote
    instance.ensure_config(tmp_path)
    assert "QueuedRunCoordinator" in path.read_text()
    own = "storage:\n  sqlite:\n    base_dir: /somewhere\n"
    path.write_text(own)
    instance.ensure_config(tmp_path)
    assert path.read_text() == own


@pytest.mark.parametrize("source", ["deploy", "generated"])
def test_the_postgres_configs_are_valid_dagster_instance_config(source, tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    if source == "deploy":
        shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    else:
        monkeypatch.setenv(instance.PG_URL_ENV, "postgresql://u:p@h:5432/d")
        instance.ensure_config(tmp_path)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_deploy_dagster_yaml_says_what_the_generated_one_says():
    deploy = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    assert deploy == yaml.safe_load(instance.POSTGRES)


def test_a_shared_instance_fails_only_this_host_and_data_directorys_abandoned_runs(tmp_path, monkeypatch):
    import dagster as dg

    from orchestration import runner

    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))
    inst = dg.DagsterInstance.local_temp(str(tmp_path))
    mine, theirs, older = (f"{c * 8}-0000-0000-0000-{'0' * 12}" for c in "abc")
    base = {runner.CLI_TAG: "true", "deploysim/pid": "1"}
    for run_id, where in ((mine, runner._where()), (theirs, "another-host:/srv/deploysim"), (older, None)):
        tags = base | ({runner.WHERE_TAG: where} if where else {})
        inst.add_run(dg.DagsterRun(job_name="traffic", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    assert sorted(runner.fail_abandoned_runs(inst)) == sorted([mine, older])  # a run without the tag: as before
    assert inst.get_run_by_id(theirs).status == dg.DagsterRunStatus.STARTED
    inst.dispose()
