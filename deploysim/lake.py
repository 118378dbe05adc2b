"""Where a run writes, and Parquet I/O through DuckDB.

Layout under the data directory (env DEPLOYSIM_HOME, default ./.deploysim):
  raw/        restricted zone: input logs and ingest output (raw text); read only by redact
  lake/       Parquet written by Python assets, read by dbt as sources
  cache/      persistent replay cache
  reports/    HTML reports
  warehouse.duckdb   written only by dbt
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from deploysim import settings


def home() -> Path:
    return settings.home()


def raw_dir() -> Path:
    return home() / "raw"


def lake_path(asset: str, candidate: str | None = None, name: str | None = None) -> Path:
    """Parquet file of an asset: lake/<asset>/[candidate=<key>/]<name>.parquet"""
    base = home() / "lake" / asset
    if candidate is not None:
        base = base / f"candidate={candidate}"
    return base / f"{name or asset}.parquet"


# ---- versioned, immutable locations: lake/<asset>/[candidate=<key>/]version=<v>/<asset>.parquet ----

LATEST = "LATEST"  # beside the version directories: the version last written (for tools and gc)


def asset_dir(asset: str, candidate: str | None = None) -> Path:
    base = home() / "lake" / asset
    return base / f"candidate={candidate}" if candidate is not None else base


def version_path(asset: str, candidate: str | None, version: str, name: str | None = None) -> Path:
    """The Parquet file of one version of an asset (never overwritten once written)."""
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"not a data version: {version!r}")
    return asset_dir(asset, candidate) / f"version={version}" / f"{name or asset}.parquet"


def latest_version(asset: str, candidate: str | None = None) -> str | None:
    p = asset_dir(asset, candidate) / LATEST
    return p.read_text().strip() or None if p.exists() else None


def current(asset: str, candidate: str | None = None, version: str | None = None, name: str | None = None) -> Path:
    """The file to read: the given version; without one, the version last written, else the
    unversioned layout (files written by hand or by tests). Pipeline steps run by Dagster always
    pass the version their upstream recorded."""
    version = version or latest_version(asset, candidate)
    return version_path(asset, candidate, version, name) if version else lake_path(asset, candidate, name)


def write_version(asset: str, candidate: str | None, version: str, write, inputs: dict[str, Any] | None = None) -> Path:
    """Write one version of an asset: ``write(path)`` writes the file into a temporary directory,
    which is renamed to version=<v>/. An existing version is kept as it is (same version, same
    content by construction). ``inputs`` (upstream versions, {"sample": v, ...}) is written beside
    it as inputs.json. LATEST then names this version. Returns the version's file."""
    final = version_path(asset, candidate, version)
    _write_new(final, write, inputs)
    set_latest(asset, candidate, version)
    return final


def _write_new(final: Path, write, inputs: dict[str, Any] | None) -> None:
    """Write final's version directory through a temporary one, unless it exists (see write_version)."""
    vdir = final.parent
    if not final.exists():
        import shutil

        vdir.parent.mkdir(parents=True, exist_ok=True)
        tmp = vdir.with_name(f".{vdir.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        tmp.mkdir()
        try:
            write(tmp / final.name)
            (tmp / INPUTS).write_text(json.dumps(inputs or {}, sort_keys=True, indent=1))
            if vdir.exists() and not final.exists():  # left empty (its file quarantined): replace it
                shutil.rmtree(vdir)
            try:
                os.rename(tmp, vdir)
            except OSError:  # written meanwhile by another process: same version, same content
                if not final.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


INPUTS = "inputs.json"


# ---- daily assets: lake/<asset>/day=<YYYY-MM-DD>/version=<v>/<asset>.parquet ----


def day_dir(asset: str, day: str) -> Path:
    if not _is_day(day):
        raise ValueError(f"not a day (YYYY-MM-DD): {day!r}")
    return home() / "lake" / asset / f"day={day}"


def day_version_path(asset: str, day: str, version: str, name: str | None = None) -> Path:
    """The Parquet file of one version of one day of a daily asset (never overwritten once written)."""
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"not a data version: {version!r}")
    return day_dir(asset, day) / f"version={version}" / f"{name or asset}.parquet"


def write_day_version(asset: str, day: str, version: str, write, inputs: dict[str, Any] | None = None) -> Path:
    """write_version for one day of a daily asset; LATEST of that day then names this version."""
    final = day_version_path(asset, day, version)
    _write_new(final, write, inputs)
    set_latest_file(day_dir(asset, day) / LATEST, version)
    return final


def latest_day_version(asset: str, day: str) -> str | None:
    p = day_dir(asset, day) / LATEST
    return p.read_text().strip() or None if p.exists() else None


def days(asset: str) -> list[str]:
    """The days of a daily asset that have a version, oldest first."""
    base = home() / "lake" / asset
    if not base.is_dir():
        return []
    out = [p.name[4:] for p in base.iterdir() if p.name.startswith("day=") and _is_day(p.name[4:])]
    return sorted(d for d in out if latest_day_version(asset, d))


def _is_day(day: str) -> bool:
    import re

    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", day or ""))


def version_inputs(asset: str, candidate: str | None, version: str | None) -> dict[str, Any]:
    """The upstream versions a version of an asset was made from ({} when unknown)."""
    if not version:
        return {}
    p = version_path(asset, candidate, version).parent / INPUTS
    return json.loads(p.read_text()) if p.exists() else {}


def set_latest(asset: str, candidate: str | None, version: str) -> None:
    set_latest_file(asset_dir(asset, candidate) / LATEST, version)


def set_latest_file(p: Path, version: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(p)
    tmp.write_text(version + "\n")
    os.replace(tmp, p)


def write_rows_version(
    asset: str,
    candidate: str | None,
    version: str,
    rows: list[dict[str, Any]],
    schema: pa.Schema | None = None,
    inputs: dict[str, Any] | None = None,
) -> Path:
    """write_rows into a new version of an asset (see write_version)."""
    return write_version(asset, candidate, version, lambda p: write_rows(p, rows, schema=schema), inputs=inputs)


def write_rows(path: Path, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> int:
    """Write rows to a Parquet file atomically; nested values are stored as JSON text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = [{k: _flat(v) for k, v in r.items()} for r in rows]
    table = pa.Table.from_pylist(flat, schema=schema) if (flat or schema) else pa.table({})
    tmp = temp_path(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return len(rows)


def read_rows(path: Path, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Read a Parquet file (or glob) with DuckDB into dicts; ``where`` keeps the rows whose
    columns equal the given values ({"status": "ok"}). The path and values go to DuckDB as
    parameters, column names as quoted identifiers: nothing is pasted into the SQL."""
    if not _exists(path):
        raise FileNotFoundError(f"missing lake file: {path} (materialise its upstream asset first)")
    sql = "SELECT * FROM read_parquet($path, hive_partitioning = false)"
    params: dict[str, Any] = {"path": str(path)}
    if where:
        sql += " WHERE " + " AND ".join(f"{quote_identifier(col)} = $v{i}" for i, col in enumerate(where))
        params |= {f"v{i}": v for i, v in enumerate(where.values())}
    con = duckdb.connect()
    try:
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def quote_identifier(name: str) -> str:
    """A column name as a SQL identifier: double-quoted, inner double quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def temp_path(path: Path) -> Path:
    """A temporary file beside path, unique to this process and call (two writers never share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _exists(path: Path) -> bool:
    s = str(path)
    return bool(list(Path("/").glob(s.lstrip("/")))) if any(c in s for c in "*?[") else path.exists()


def _flat(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return v


def iter_parquet_text(path: Path) -> Iterable[str]:
    """Every string cell of a Parquet file (for residual-PII scans)."""
    table = pq.read_table(path)
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            for v in col.to_pylist():
                if v:
                    yield v
