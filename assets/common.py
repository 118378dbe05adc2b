"""Shared by the asset modules: turning a step's returned dict into a MaterializeResult."""
import dagster as dg


def result(meta: dict, **extra) -> dg.MaterializeResult:
    meta = dict(meta)
    version = meta.pop("data_version", None)
    md = meta.pop("markdown", None)
    metadata = {k: (dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v) for k, v in meta.items()}
    if md:
        metadata["summary"] = dg.MetadataValue.md(md)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version) if version else None, **extra)


def progress_logger(context, every: float = 0.1):
    """A progress callback that logs about every 10% of the work."""
    state = {"next": every}

    def log(done: int, total: int) -> None:
        if total and (done / total >= state["next"] or done == total):
            line = f"{context.asset_key.to_user_string()} [{context.partition_key}]: {done}/{total} ({done / total:.0%})"
            context.log.info(line)
            print(f"  {line}", flush=True)  # the CLI's progress (and the run's stdout in the UI)
            state["next"] = done / total + every

    return log
