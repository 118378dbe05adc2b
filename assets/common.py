"""Shared by the asset modules: turning a step's returned dict into a MaterializeResult."""

import dagster as dg

from deploysim.days import is_day
from orchestration.metadata import as_metadata
from orchestration.partitions import DAILY


def result(meta: dict, settings=None, upstream: dict | None = None, **extra) -> dg.MaterializeResult:
    """The step's metadata as Dagster metadata (orchestration.metadata.as_metadata); `settings`
    (deploysim.settings.Settings) is recorded as what the run evaluated with (never the secret). The
    data version is recorded as `version` (with `path`, where the step wrote it) and the upstream
    versions it read as `upstream`."""
    meta = dict(meta)
    if settings is not None:
        meta["settings"] = settings.recorded()
    version = meta.pop("data_version", None)
    if version:
        meta["version"] = version
    if upstream is not None:
        meta["upstream"] = upstream
    if isinstance(meta.get("path"), str):
        meta["path"] = dg.MetadataValue.path(meta["path"])
    return dg.MaterializeResult(
        metadata=as_metadata(meta), data_version=dg.DataVersion(version) if version else None, **extra
    )


def progress_logger(context, every: float = 0.1, label: str | None = None):
    """A progress callback that logs about every 10% of the work (as the step's asset, or `label`)."""
    state = {"next": every}
    name = label or context.asset_key.to_user_string()

    def log(done: int, total: int) -> None:
        if total and (done / total >= state["next"] or done == total):
            line = f"{name} [{context.partition_key}]: {done}/{total} ({done / total:.0%})"
            context.log.info(line)
            print(f"  {line}", flush=True)  # the CLI's progress (and the run's stdout in the UI)
            state["next"] = done / total + every

    return log


UNPARTITIONED = ("sample",)


def latest_record(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    """The latest materialisation record of an asset (of this partition where the asset is partitioned
    that way: a candidate, or a day; a daily asset without a day: its latest of any day)."""
    partitioned = is_day(partition) if asset in DAILY else asset not in UNPARTITIONED
    parts = [partition] if partition and partitioned else None
    flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=parts)
    recs = instance.fetch_materializations(flt, limit=1).records
    return recs[0] if recs else None


def recorded(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> dict:
    """The metadata of the latest materialisation of an asset as plain values ({} when none)."""
    rec = latest_record(instance, asset, partition)
    if rec is None or rec.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in rec.asset_materialization.metadata.items()}


def upstream_version(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> str | None:
    """The data version an upstream asset recorded at its latest materialisation (None when none).
    For a candidate's step, "redact" is the redacted traffic the latest sample was drawn from: its
    frame of days (deploysim.pipeline.redacted_files)."""
    if asset == "redact" and not is_day(partition):
        frame = recorded(instance, "sample").get("redact_version")
        return str(frame) if frame else None
    rec = latest_record(instance, asset, partition)
    mat = rec.asset_materialization if rec else None
    if mat is None:
        return None
    v = mat.metadata.get("version")
    return str(getattr(v, "value", v)) if v is not None else mat.tags.get("dagster/data_version")


def baseline_replay_version(context) -> str | None:
    """For a candidate whose baseline is another candidate: that candidate's latest replay version."""
    from deploysim import candidates as reg

    base = reg.get(context.partition_key).baseline
    return None if base == reg.PRODUCTION else upstream_version(context.instance, "replay", base)


def chain_versions(context, assets) -> tuple[dict[str, str | None], str | None]:
    """The upstream versions of a candidate's step and, for a candidate baselined on another, that
    candidate's replay version (also recorded among the upstreams as `baseline_replay`)."""
    up = upstream_versions(context, assets)
    base = baseline_replay_version(context)
    return (up | {"baseline_replay": base} if base else up), base


def upstream_versions(context, assets, partition: str | None = None) -> dict[str, str | None]:
    """{asset: version} of the latest materialisation of each upstream asset (same candidate partition)."""
    partition = partition if partition is not None else (context.partition_key if context.has_partition_key else None)
    return {a: upstream_version(context.instance, a, partition) for a in assets}


def day_results(context, meta: dict, upstream: dict | None = None) -> dg.MaterializeResult:
    """A daily step's result over the run's days: each day's own metadata (its version, its
    conversations, whether it was reused) on that day's materialisation, the run's counts on all."""
    per_day = meta.pop("days", {})
    for day, m in per_day.items():
        if day in context.partition_keys:
            extra = {"upstream": upstream[day]} if upstream and day in upstream else {}
            context.add_asset_metadata(as_metadata(_day_meta(m) | extra), partition_key=day)
    one = len(context.partition_keys) == 1
    meta.pop("path", None)
    version = meta.pop("data_version", None)
    return dg.MaterializeResult(
        metadata=as_metadata(meta), data_version=dg.DataVersion(version) if one and version else None
    )


def _day_meta(m: dict) -> dict:
    m = dict(m)
    if isinstance(m.get("path"), str):
        m["path"] = dg.MetadataValue.path(m["path"])
    return m


def window_versions(instance: dg.DagsterInstance, n: int, end: str | None = None) -> dict[str, str]:
    """day -> the redact version recorded by its latest materialisation, for the days with traffic among
    the n days ending at `end` (default: the newest day redacted that had conversations)."""
    from deploysim import days as dd

    done = sorted(instance.get_materialized_partitions(dg.AssetKey("redact")), reverse=True)
    if end is None:
        end = next((d for d in done if _conversations(instance, d)), None)
        if end is None:
            return {}
    out = {}
    for d in dd.window(end, n):
        if d in done and _conversations(instance, d) and (v := upstream_version(instance, "redact", d)):
            out[d] = v
    return out


def _conversations(instance: dg.DagsterInstance, day: str) -> int:
    rec = latest_record(instance, "redact", day)
    mat = rec.asset_materialization if rec else None
    v = mat.metadata.get("conversations") if mat else None
    return int(getattr(v, "value", v) or 0)
