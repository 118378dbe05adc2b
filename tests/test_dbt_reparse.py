"""Under `dagster dev` every process that loads the definitions re-parses dbt only when a dbt file changed,
one at a time, and swaps the manifest in whole: a step's subprocess never reads a half-written manifest
(it once failed a run on the deployment with "orjson.JSONDecodeError: unexpected end of data")."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from dagster_dbt import DbtProject

from orchestration.resources import ROOT, reparse


def _project(tmp_path: Path) -> DbtProject:
    shutil.copytree(ROOT / "dbt", tmp_path / "dbt", ignore=shutil.ignore_patterns("target", "logs"))
    return DbtProject(project_dir=tmp_path / "dbt", profiles_dir=tmp_path / "dbt")


def test_parses_when_a_dbt_file_changed_and_never_shows_a_partial_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYSIM_HOME", str(tmp_path / "home"))  # the profile reads it
    project = _project(tmp_path)
    manifest = Path(project.manifest_path)
    reparse(project)  # no manifest yet: parsed
    first = json.loads(manifest.read_text())
    assert any(n.startswith("model.") for n in first["nodes"])
    stamp = manifest.stat().st_mtime_ns
    reparse(project)  # nothing changed: not parsed again
    assert manifest.stat().st_mtime_ns == stamp

    model = next((tmp_path / "dbt" / "models").rglob("*.sql"))
    later = time.time() + 5
    os.utime(model, (later, later))  # an edit
    bad: list[str] = []
    stop = threading.Event()

    def read() -> None:  # a step's subprocess loading the definitions meanwhile
        while not stop.is_set():
            try:
                json.loads(manifest.read_bytes())
            except ValueError as e:
                bad.append(str(e))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        workers = [threading.Thread(target=reparse, args=(project,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        reader.join()
    assert bad == []
    assert manifest.stat().st_mtime_ns != stamp and manifest.stat().st_mtime >= later - 1
    assert not [p for p in manifest.parent.iterdir() if p.name.startswith("parse-")]  # no leftovers
