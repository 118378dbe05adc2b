"""Where a run writes, and Parquet I/O through DuckDB.

Layout under the data directory (env DEPLOYSIM_HOME, default ./.deploysim):
  raw/        restricted zone: input logs and ingest output (raw text); read only by redact
  lake/       Parquet written by Python assets, read by dbt as sources (or DEPLOYSIM_LAKE: another
              local folder, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX, through fsspec)
  cache/      persistent replay cache
  reports/    HTML reports
  warehouse.duckdb   written only by dbt

Every lake path comes from here as a UPath: a pathlib.Path on local disk, an fsspec path on object
storage. Code outside this module goes through the helpers below (exists, read_text, write_text, glob,
mtime, remove, ...) for anything it does with a lake path, so that both work.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from typing_extensions import TypeIs
from upath import UPath

from deploysim import settings
from deploysim.days import is_day


def home() -> Path:
    return settings.home()


def raw_dir() -> Path:
    return home() / "raw"


def root() -> UPath:
    """The lake: DEPLOYSIM_LAKE (a local folder or an object-store URI), default <home>/lake."""
    return location(settings.lake() or home() / "lake")


def location(p: str | os.PathLike[str] | UPath) -> UPath:
    """A lake path from its text (e.g. a path recorded in metadata): s3://... or gs://... on object
    storage (credentials and endpoint from the store's usual environment: AWS_*, Google's), else local."""
    if isinstance(p, UPath):
        return p
    s = str(p)
    if "://" in s:
        # no listing cache: other processes (dbt, step subprocesses) write to the lake too
        return UPath(s, use_listings_cache=False)
    return UPath(Path(s).expanduser().resolve())


def is_local(p: UPath | Path) -> TypeIs[Path]:
    """On local disk (a pathlib.Path), not on object storage."""
    return isinstance(p, Path)


def lake_path(asset: str, candidate: str | None = None, name: str | None = None) -> UPath:
    """Parquet file of an asset: lake/<asset>/[candidate=<key>/]<name>.parquet"""
    return asset_dir(asset, candidate) / f"{name or asset}.parquet"


# ---- versioned, immutable locations: lake/<asset>/[candidate=<key>/]version=<v>/<asset>.parquet ----

LATEST = "LATEST"  # beside the version directories: the version last written (for tools and gc)
INPUTS = "inputs.json"  # beside a version's file; on object storage written last: the version is complete


def asset_dir(asset: str, candidate: str | None = None) -> UPath:
    base = root() / asset
    return base / f"candidate={candidate}" if candidate is not None else base


def version_path(asset: str, candidate: str | None, version: str, name: str | None = None) -> UPath:
    """The Parquet file of one version of an asset (never overwritten once written)."""
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"not a data version: {version!r}")
    return asset_dir(asset, candidate) / f"version={version}" / f"{name or asset}.parquet"


def latest_version(asset: str, candidate: str | None = None) -> str | None:
    return (read_text_or_none(asset_dir(asset, candidate) / LATEST) or "").strip() or None


def current(asset: str, candidate: str | None = None, version: str | None = None, name: str | None = None) -> UPath:
    """The file to read: the given version; without one, the version last written, else the
    unversioned layout (files written by hand or by tests). Pipeline steps run by Dagster always
    pass the version their upstream recorded."""
    version = version or latest_version(asset, candidate)
    return version_path(asset, candidate, version, name) if version else lake_path(asset, candidate, name)


def write_version(
    asset: str,
    candidate: str | None,
    version: str,
    write: Callable[[Path], Any],
    inputs: dict[str, Any] | None = None,
) -> UPath:
    """Write one version of an asset: ``write(path)`` writes the file (a local path). An existing
    version is kept as it is (same version, same content by construction). ``inputs`` (upstream
    versions, {"sample": v, ...}) is written beside it as inputs.json. LATEST then names this version.
    On local disk the version's folder is written as a temporary folder and renamed into place; on
    object storage (no rename) the file is uploaded, then inputs.json, which marks the version complete
    (two writers of one version write the same content: the last one wins). Returns the version's file."""
    final = version_path(asset, candidate, version)
    _write_new(final, write, inputs)
    set_latest(asset, candidate, version)
    return final


def _write_new(final: UPath, write: Callable[[Path], Any], inputs: dict[str, Any] | None) -> None:
    """Write the version whose file is `final`, unless it is there and complete (see write_version)."""
    body = json.dumps(inputs or {}, sort_keys=True, indent=1)
    if not is_local(final):
        if not (exists(final) and exists(final.parent / INPUTS)):
            with tempfile.TemporaryDirectory(prefix="deploysim-") as tmp:
                local = Path(tmp) / final.name
                write(local)
                final.fs.put_file(str(local), final.path)
            write_text(final.parent / INPUTS, body)
        return
    vdir = Path(final.parent)
    if not final.exists():
        vdir.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = vdir.with_name(f".{vdir.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        tmp_dir.mkdir()
        try:
            write(tmp_dir / final.name)
            (tmp_dir / INPUTS).write_text(body)
            if vdir.exists() and not final.exists():  # left empty (its file quarantined): replace it
                shutil.rmtree(vdir)
            try:
                os.rename(tmp_dir, vdir)
            except OSError:  # written meanwhile by another process: same version, same content
                if not final.exists():
                    raise
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)


# ---- daily assets: lake/<asset>/day=<YYYY-MM-DD>/version=<v>/<asset>.parquet ----


def day_dir(asset: str, day: str) -> UPath:
    if not is_day(day):
        raise ValueError(f"not a day (YYYY-MM-DD): {day!r}")
    return root() / asset / f"day={day}"


def day_version_path(asset: str, day: str, version: str, name: str | None = None) -> UPath:
    """The Parquet file of one version of one day of a daily asset (never overwritten once written)."""
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"not a data version: {version!r}")
    return day_dir(asset, day) / f"version={version}" / f"{name or asset}.parquet"


def write_day_version(
    asset: str, day: str, version: str, write: Callable[[Path], Any], inputs: dict[str, Any] | None = None
) -> UPath:
    """write_version for one day of a daily asset; LATEST of that day then names this version."""
    final = day_version_path(asset, day, version)
    _write_new(final, write, inputs)
    set_latest_file(day_dir(asset, day) / LATEST, version)
    return final


def latest_day_version(asset: str, day: str) -> str | None:
    return (read_text_or_none(day_dir(asset, day) / LATEST) or "").strip() or None


def days(asset: str) -> list[str]:
    """The days of a daily asset that have a version, oldest first."""
    found = [p.name[4:] for p in glob(root() / asset, "day=*")]
    return sorted(d for d in found if is_day(d) and latest_day_version(asset, d))


def version_inputs(asset: str, candidate: str | None, version: str | None) -> dict[str, Any]:
    """The upstream versions a version of an asset was made from ({} when unknown)."""
    if not version:
        return {}
    text = read_text_or_none(version_path(asset, candidate, version).parent / INPUTS)
    return json.loads(text) if text else {}


def set_latest(asset: str, candidate: str | None, version: str) -> None:
    set_latest_file(asset_dir(asset, candidate) / LATEST, version)


def set_latest_file(p: UPath | Path, version: str) -> None:
    write_text(p, version + "\n")


def write_rows_version(
    asset: str,
    candidate: str | None,
    version: str,
    rows: list[dict[str, Any]],
    schema: pa.Schema | None = None,
    inputs: dict[str, Any] | None = None,
) -> UPath:
    """write_rows into a new version of an asset (see write_version)."""
    return write_version(asset, candidate, version, lambda p: write_rows(p, rows, schema=schema), inputs=inputs)


def write_rows(path: UPath | Path, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> int:
    """Write rows to a Parquet file atomically (on object storage: one object, written whole);
    nested values are stored as JSON text."""
    flat = [{k: _flat(v) for k, v in r.items()} for r in rows]
    table = pa.Table.from_pylist(flat, schema=schema) if (flat or schema) else pa.table({})
    if not is_local(path):
        with path.open("wb") as f:
            pq.write_table(table, f)
        return len(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return len(rows)


def read_rows(
    path: UPath | Path, where: dict[str, Any] | None = None, columns: list[str] | None = None
) -> list[dict[str, Any]]:
    """Read a Parquet file (or glob) with DuckDB into dicts; ``where`` keeps the rows whose
    columns equal the given values ({"status": "ok"}) or, for a set or list, are among them
    ({"conversation_id": ids}); ``columns`` reads only those (a large file's messages stay on
    disk). The path and values go to DuckDB as parameters, column names as quoted identifiers:
    nothing is pasted into the SQL. On object storage DuckDB reads through the path's fsspec
    filesystem (no DuckDB extension needed)."""
    if not exists(path):
        raise FileNotFoundError(f"missing lake file: {path} (materialise its upstream asset first)")
    select = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
    sql = f"SELECT {select} FROM read_parquet($path, hive_partitioning = false)"
    params: dict[str, Any] = {"path": str(path)}
    if where:
        among = {col for col, v in where.items() if isinstance(v, (set, frozenset, list, tuple))}
        sql += " WHERE " + " AND ".join(
            f"list_contains($v{i}, {quote_identifier(col)})" if col in among else f"{quote_identifier(col)} = $v{i}"
            for i, col in enumerate(where)
        )
        params |= {f"v{i}": sorted(v) if k in among else v for i, (k, v) in enumerate(where.items())}
    con = duckdb.connect()
    try:
        if not is_local(path):
            con.register_filesystem(path.fs)
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


# ---- file operations on lake paths (local or object storage) ----------------------------------


def exists(path: UPath | Path) -> bool:
    """Whether a file or folder (or, with * ? [, anything matching the glob) exists."""
    s = str(path)
    if not any(c in s for c in "*?["):
        return path.exists()
    if not is_local(path):
        return bool(path.fs.glob(path.path))
    return bool(list(Path("/").glob(s.lstrip("/"))))


def read_text_or_none(path: UPath | Path) -> str | None:
    """A small text file (LATEST, inputs.json, a run record), or None when it does not exist."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def write_text(path: UPath | Path, text: str) -> None:
    """Replace a small text file whole: on local disk through a temporary file and a rename; on
    object storage as one object (a reader sees the old or the new content)."""
    if not is_local(path):
        path.write_text(text)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def makedirs(path: UPath | Path) -> None:
    """A folder and its parents (object storage has no folders: nothing to do)."""
    if is_local(path):
        Path(path).mkdir(parents=True, exist_ok=True)


def glob(base: UPath | Path, pattern: str) -> list[UPath]:
    """The paths under base matching pattern (relative, e.g. "run=*/release_gate.parquet"), sorted."""
    if not exists(base):
        return []
    found: Iterable[UPath | Path] = base.glob(pattern)
    return sorted((location(p) for p in found), key=str)


def mtime(path: UPath | Path) -> float:
    """When a file was last written (seconds since the epoch)."""
    return path.stat().st_mtime


def parts(path: UPath | Path) -> tuple[str, ...]:
    """A lake path's parts below the lake root: ("grade", "candidate=x", "version=v")."""
    base, s = str(root()).rstrip("/"), str(path)
    if not s.startswith(base + "/"):
        raise ValueError(f"{path} is not in the lake ({base})")
    return tuple(s[len(base) + 1 :].split("/"))


def size(path: UPath | Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if not is_local(path):
        return int(path.fs.du(path.path, total=True))
    p = Path(path)
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def remove(path: UPath | Path) -> None:
    """Remove a file, or a folder with everything under it."""
    if not is_local(path):
        path.fs.rm(path.path, recursive=True)
    elif Path(path).is_dir():
        shutil.rmtree(path)
    else:
        Path(path).unlink()


def move_out(path: UPath | Path, dest: Path) -> Path:
    """Move a lake file to a local path (e.g. into the restricted zone). Returns dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_local(path):
        shutil.move(path, dest)
    else:
        path.fs.get_file(path.path, str(dest))
        path.fs.rm(path.path)
    return dest


@contextmanager
def parquet_file(path: UPath | Path) -> Iterator[pq.ParquetFile]:
    """A Parquet file opened for reading in batches (pyarrow), local or on object storage."""
    if is_local(path):
        yield pq.ParquetFile(path)
        return
    with path.open("rb") as f:
        yield pq.ParquetFile(f)


def _flat(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return v


def iter_parquet_text(path: UPath | Path) -> Iterable[str]:
    """Every string cell of a Parquet file (for residual-PII scans)."""
    with parquet_file(path) as f:
        table = f.read()
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            for v in col.to_pylist():
                if v:
                    yield v
