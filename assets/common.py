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
            context.log.info(f"{done}/{total} ({done / total:.0%})")
            state["next"] = done / total + every

    return log
