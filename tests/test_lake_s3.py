"""The lake on object storage (issue 13, item 5): DEPLOYSIM_LAKE=s3://BUCKET/PREFIX, Parquet written
through fsspec (s3fs), read by DuckDB and by dbt through the same filesystem.

Real parts: a local S3-compatible server (moto's server mode on 127.0.0.1, started here), s3fs, DuckDB,
dbt, demo logs, the reference endpoint over HTTP and the CLI running Dagster. A candidate's chain runs
once with the lake on local disk and once on S3, from the same inputs: same versions, estimates and gate.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from deploysim import lake, settings

pytest.importorskip("moto.server")

BUCKET = "deploysim-lake"
SECRET = "moto-secret-never-logged-5e1f"  # must not appear in any file the run leaves behind


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free port of 127.0.0.1, a bucket, and the AWS environment pointing at it."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    old = dict(os.environ)
    os.environ.update(
        AWS_ACCESS_KEY_ID="moto-key",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    s3fs.S3FileSystem.clear_instance_cache()  # an instance made for another endpoint is not reused
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        os.environ.clear()
        os.environ.update(old)
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def keys(client, prefix: str) -> list[str]:
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


@pytest.fixture
def s3_lake(s3, tmp_path, monkeypatch, request):
    """DEPLOYSIM_LAKE on a prefix of its own in the bucket, DEPLOYSIM_HOME in tmp."""
    prefix = f"unit/{request.node.name}"
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    monkeypatch.setenv("DEPLOYSIM_LAKE", f"s3://{BUCKET}/{prefix}/")
    return prefix


# ---- settings --------------------------------------------------------------------------------------


def test_the_lake_setting_takes_a_path_or_an_s3_or_gs_uri(monkeypatch):
    assert settings.check_lake("") == "" and settings.check_lake("/data/lake") == "/data/lake"
    assert settings.check_lake("s3://bucket/some/prefix/") == "s3://bucket/some/prefix"
    assert settings.check_lake("GS://bucket") == "gs://bucket"
    for bad, says in [
        ("http://host/lake", "s3:// or gs://"),
        ("file:///tmp/lake", "s3:// or gs://"),
        ("s3://", "name a bucket"),
        ("s3:///key", "name a bucket"),
    ]:
        with pytest.raises(ValueError, match=says):
            settings.check_lake(bad)
    with pytest.raises(ValueError) as e:
        settings.check_lake("s3://AKIAKEY:hunter2@bucket/lake")
    assert "hunter2" not in str(e.value)  # a credential in the URI is refused without repeating it
    monkeypatch.setenv("DEPLOYSIM_LAKE", "ftp://x/y")
    with pytest.raises(ValueError, match="lake"):
        settings.load()
    monkeypatch.setenv("DEPLOYSIM_LAKE", "s3://bucket/lake")
    assert settings.load().recorded()["lake"] == "s3://bucket/lake"


def test_the_default_lake_is_under_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path))
    monkeypatch.delenv("DEPLOYSIM_LAKE", raising=False)
    assert lake.root() == tmp_path.resolve() / "lake" and isinstance(lake.root(), Path)
    want = tmp_path.resolve() / "lake/grade/candidate=c/version=v1/grade.parquet"
    assert lake.version_path("grade", "c", "v1") == want
    monkeypatch.setenv("DEPLOYSIM_LAKE", str(tmp_path / "elsewhere"))
    assert lake.root() == (tmp_path / "elsewhere").resolve()


# ---- lake.py on S3 ---------------------------------------------------------------------------------


def test_write_version_on_s3_is_written_once_and_marked_complete_last(s3, s3_lake):
    calls: list[Path] = []

    def write(rows):
        def w(p: Path) -> None:
            calls.append(p)
            lake.write_rows(p, rows)

        return w

    path = lake.write_version("grade", "c1", "v1", write([{"a": 1, "b": "x"}]), inputs={"sample": "s1"})
    assert str(path) == f"s3://{BUCKET}/{s3_lake}/grade/candidate=c1/version=v1/grade.parquet"
    assert keys(s3, s3_lake) == [
        f"{s3_lake}/grade/candidate=c1/LATEST",
        f"{s3_lake}/grade/candidate=c1/version=v1/grade.parquet",
        f"{s3_lake}/grade/candidate=c1/version=v1/inputs.json",
    ]
    assert lake.latest_version("grade", "c1") == "v1" and lake.version_inputs("grade", "c1", "v1") == {"sample": "s1"}
    # the same version again: kept as it is, nothing written
    again = lake.write_version("grade", "c1", "v1", write([{"a": 2, "b": "y"}]), inputs={"sample": "s1"})
    assert again == path and len(calls) == 1 and lake.read_rows(path) == [{"a": 1, "b": "x"}]
    # a version without its marker (a writer stopped after the upload) is written again
    s3.delete_object(Bucket=BUCKET, Key=f"{s3_lake}/grade/candidate=c1/version=v1/inputs.json")
    lake.write_version("grade", "c1", "v1", write([{"a": 3, "b": "z"}]), inputs={"sample": "s1"})
    assert len(calls) == 2 and lake.read_rows(path) == [{"a": 3, "b": "z"}]
    assert lake.version_inputs("grade", "c1", "v1") == {"sample": "s1"}
    # a second version moves LATEST; the first stays readable
    lake.write_rows_version("grade", "c1", "v2", [{"a": 4, "b": "w"}])
    assert lake.latest_version("grade", "c1") == "v2"
    assert lake.read_rows(lake.current("grade", "c1")) == [{"a": 4, "b": "w"}]
    assert lake.read_rows(lake.current("grade", "c1", "v1")) == [{"a": 3, "b": "z"}]
    assert [p.name for p in lake.glob(lake.asset_dir("grade", "c1"), "version=*")] == ["version=v1", "version=v2"]
    assert lake.parts(lake.current("grade", "c1")) == ("grade", "candidate=c1", "version=v2", "grade.parquet")
    assert not (Path(os.environ["DEPLOYSIM_HOME"]) / "lake").exists()  # nothing on local disk


def test_read_rows_on_s3_filters_globs_and_says_what_is_missing(s3, s3_lake):
    pairs = [("a", "ok"), ("a", "error"), ("b", "ok")]
    rows = [{"candidate": c, "status": s, "n": i} for i, (c, s) in enumerate(pairs)]
    lake.write_rows_version("replay", "a", "v1", rows[:2])
    lake.write_rows_version("replay", "b", "v1", rows[2:])
    assert lake.read_rows(lake.current("replay", "a"), where={"status": "ok"}) == [rows[0]]
    assert lake.read_rows(lake.current("replay", "a"), where={"status": "it's"}) == []  # a value, not SQL
    assert lake.read_rows(lake.current("replay", "a"), columns=["n", "status"]) == [
        {"n": 0, "status": "ok"},
        {"n": 1, "status": "error"},
    ]  # only the columns asked for, in that order
    every = lake.root() / "replay" / "*" / "version=*" / "*.parquet"
    assert lake.exists(every) and sorted(r["n"] for r in lake.read_rows(every)) == [0, 1, 2]
    assert lake.read_rows(every, where={"n": {0, 2}, "status": "ok"}, columns=["n"]) in (
        [{"n": 0}, {"n": 2}],
        [{"n": 2}, {"n": 0}],
    )
    assert lake.read_rows(every, where={"n": []}) == []  # among none
    assert lake.latest_version("replay", "nobody") is None and lake.version_inputs("replay", "nobody", None) == {}
    with pytest.raises(FileNotFoundError) as e:
        lake.read_rows(lake.current("replay", "nobody", "v9"))
    assert f"s3://{BUCKET}/{s3_lake}/replay/candidate=nobody/version=v9/replay.parquet" in str(e.value)
    assert SECRET not in str(e.value) and "moto-key" not in str(e.value)


def test_small_files_move_out_and_remove_on_s3(s3, s3_lake, tmp_path):
    p = lake.asset_dir("gate", "c") / "last_run.json"
    assert lake.read_text_or_none(p) is None
    lake.write_text(p, '{"status": "passed"}')
    lake.write_text(p, '{"status": "blocked"}')  # replaced whole
    assert json.loads(lake.read_text_or_none(p) or "") == {"status": "blocked"}
    assert lake.mtime(p) > 0 and lake.size(lake.asset_dir("gate", "c")) == len('{"status": "blocked"}')
    path = lake.write_rows_version("redacted", None, "v1", [{"text": "hello"}])
    assert list(lake.iter_parquet_text(path)) == ["hello"]
    dest = lake.move_out(path, tmp_path / "raw" / "quarantine" / "redacted.parquet")
    assert dest.exists() and not lake.exists(path)
    lake.remove(lake.asset_dir("gate", "c"))
    assert not lake.exists(p)


# ---- a candidate's chain, local lake against S3 lake -----------------------------------------------


def _run_chain(home: Path, **env: str) -> dict:
    """Traffic and the chain of `regressing` through the CLI (Dagster, dbt), and what it decided."""
    from deploysim import history, pipeline, runs
    from deploysim_testkit.cli_home import small_home
    from orchestration import cli

    with small_home(home, **env) as server:
        add = ["candidate", "add", "regressing", "--base-url", server.base_url, "--model", "regressing"]
        assert cli.main(add) == 0
        code = cli.main(["run", "regressing"])
        last = runs.last("regressing")
        versions = {
            a: lake.latest_version(a, None if a in ("frame", "sample") else "regressing")
            for a in ("frame", "sample", "replay", "grade", "estimate")
        }
        return {
            "code": code,
            "last": last,
            "versions": versions,
            "estimates": sorted(lake.read_rows(lake.current("estimate", "regressing")), key=lambda r: r["behaviour"]),
            "gate": pipeline.read_gate("regressing", last["run_id"] if last else None),
            "decisions": history.decisions("regressing"),
            "report": pipeline.report_path("regressing"),
            "lake": str(lake.root()),
            "days": {d: lake.latest_day_version("redacted", d) for d in lake.days("redacted")},
        }


@pytest.fixture(scope="module")
def chains(s3, tmp_path_factory):
    local = _run_chain(tmp_path_factory.mktemp("lake-local"))
    remote_home = tmp_path_factory.mktemp("lake-s3")
    remote = _run_chain(remote_home, DEPLOYSIM_LAKE=f"s3://{BUCKET}/chain/lake")
    return {"local": local, "s3": remote, "home": remote_home}


def test_the_chain_on_s3_writes_the_versioned_layout_to_the_bucket_and_nothing_local(s3, chains):
    from orchestration import cli

    got = chains["s3"]
    assert got["lake"] == f"s3://{BUCKET}/chain/lake"
    assert got["code"] == cli.EXIT_BLOCKED, got["last"]
    v = got["versions"]
    assert all(v.values()), v
    found = set(keys(s3, "chain/lake/"))
    for asset in ("frame", "sample"):  # the sample and the frame of days it was drawn from
        for f in (f"version={v[asset]}/{asset}.parquet", f"version={v[asset]}/inputs.json", "LATEST"):
            assert f"chain/lake/{asset}/{f}" in found
    assert got["days"] and all(got["days"].values())
    for day, dv in got["days"].items():  # the redacted traffic, a version per day
        for f in (f"version={dv}/redacted.parquet", f"version={dv}/inputs.json", "LATEST"):
            assert f"chain/lake/redacted/day={day}/{f}" in found
    for asset in ("replay", "grade", "estimate"):
        for f in (f"version={v[asset]}/{asset}.parquet", f"version={v[asset]}/inputs.json", "LATEST"):
            assert f"chain/lake/{asset}/candidate=regressing/{f}" in found
    run_id = got["last"]["run_id"]
    assert f"chain/lake/gate/candidate=regressing/run={run_id}/release_gate.parquet" in found  # written by dbt
    assert "chain/lake/gate/candidate=regressing/last_run.json" in found
    home = chains["home"]
    assert not (home / "lake").exists()  # nothing in the default lake
    # the restricted zone, the caches, the reports and the warehouse stay local
    assert list((home / "raw" / "ingest").glob("day=*/conversations.parquet"))
    assert not any(k.startswith("chain/lake/raw") or "/ingest/" in k for k in found)
    assert got["report"].exists() and (home / "warehouse.duckdb").exists()


def test_the_chain_on_s3_decides_as_on_local_disk(chains):
    local, remote = chains["local"], chains["s3"]
    assert remote["code"] == local["code"]
    # the traffic's versions come from its contents, not from where they are (a candidate's replay
    # version includes its endpoint's URL, whose port differs between the two runs, and so do the
    # versions downstream of it)
    for asset in ("frame", "sample"):
        assert remote["versions"][asset] == local["versions"][asset]
    assert remote["days"] == local["days"]

    def same(rows):  # without the run and the versions
        drop = ("run_id", "decided_at", "version")
        return [{k: v for k, v in r.items() if k not in drop and not k.endswith("_version")} for r in rows]

    assert {"version", "sample_version", "replay_version"} <= set(remote["estimates"][0])
    assert same(remote["estimates"]) == same(local["estimates"]) and remote["estimates"]
    assert same(remote["gate"]) == same(local["gate"]) and remote["gate"]
    assert len(same(remote["gate"])[0]) > 10  # what is compared: rates, intervals, status, reason...
    # dbt built the gate and the decision from the estimate it read on S3 (there is no local lake)
    [decision] = remote["decisions"]
    assert decision["verdict"] == local["decisions"][0]["verdict"] == "blocked"
    assert decision["estimate_version"] == remote["versions"]["estimate"]
    assert decision["run_id"] == remote["last"]["run_id"] and decision["report"]


def test_no_credential_is_written_anywhere_by_the_s3_run(chains):
    home = chains["home"]
    for p in home.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p


def test_gc_removes_unreferenced_versions_from_the_bucket(s3, chains, monkeypatch):
    from deploysim import history

    monkeypatch.setenv("DEPLOYSIM_HOME", str(chains["home"]))
    monkeypatch.setenv("DEPLOYSIM_LAKE", f"s3://{BUCKET}/chain/lake")
    kept = chains["s3"]["versions"]["grade"]
    lake.write_rows_version("grade", "regressing", "unreferenced", [{"behaviour": "x"}])
    lake.set_latest("grade", "regressing", kept)  # not the latest, referenced by no decision
    before = set(keys(s3, "chain/lake/"))
    dry = history.collect(keep=1, dry_run=True)
    assert [str(p) for p in dry.removed] == [
        f"s3://{BUCKET}/chain/lake/grade/candidate=regressing/version=unreferenced"
    ]
    assert dry.bytes > 0 and set(keys(s3, "chain/lake/")) == before
    history.collect(keep=1)
    gone = {k for k in before if "/version=unreferenced/" in k}
    assert len(gone) == 2 and set(keys(s3, "chain/lake/")) == before - gone
    assert lake.read_rows(lake.current("grade", "regressing"))  # the kept version is still there
