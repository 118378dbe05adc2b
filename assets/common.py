"""Shared by the asset modules: turning a step's returned dict into a MaterializeResult."""

import dagster as dg

from orchestration.metadata import as_metadata


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


UNPARTITIONED = ("ingest", "redact", "sample")


def latest_record(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    """The latest materialisation record of an asset (of this candidate partition where partitioned)."""
    parts = [partition] if partition and asset not in UNPARTITIONED else None
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
    """The data version an upstream asset recorded at its latest materialisation (None when none)."""
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
