"""Blocking checks: residual personal data downstream of redact, and replay completeness."""

import warnings

import dagster as dg
from dagster._core.errors import DagsterInvalidPropertyError
from upath import UPath

from deploysim import lake, pipeline
from orchestration.partitions import candidates
from orchestration.resources import Settings

# Partitioned asset checks are a preview feature in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def _pii_result(found: dict) -> dg.AssetCheckResult:
    """Counts, types and the first places (file, record, field, type), never a value."""
    desc = None
    if found["hits"]:
        first = found["places"][0] if found["places"] else {}
        at = ", ".join(f"{k} {first[k]}" for k in ("file", "record", "field", "type") if first.get(k))
        desc = f"{found['hits']} value(s) of personal data in clear; first at {at}"
        if found.get("quarantined"):
            desc += f"; the file was moved to the restricted zone: {found['quarantined']}"
    metadata = {
        "hits": found["hits"],
        "by_type": dg.MetadataValue.json(found["by_type"]),
        "by_file": dg.MetadataValue.json(found["by_file"]),
        "places": dg.MetadataValue.json(found.get("places", [])),
    }
    if found.get("quarantined"):
        metadata["quarantined"] = dg.MetadataValue.path(found["quarantined"])
    return dg.AssetCheckResult(
        passed=found["hits"] == 0, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata, description=desc
    )


@dg.asset_check(
    asset="redact",
    blocking=True,
    description="No personal data left in clear after redaction "
    "(its Parquet and its Dagster metadata); a file "
    "that fails is moved to raw/quarantine.",
)
def redact_has_no_residual_pii(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Every day redacted in this run (else the latest day redacted)."""
    try:
        run_id = context.run.run_id
    except DagsterInvalidPropertyError:  # invoked directly, outside a run
        run_id = None
    of = dg.DagsterEventType.ASSET_MATERIALIZATION
    recs = context.instance.get_records_for_run(run_id, of_type=of, limit=100_000).records if run_id else []
    metas = [
        dict(m.metadata)
        for r in recs
        if (m := r.event_log_entry.asset_materialization) is not None and m.asset_key == dg.AssetKey("redact")
    ] or [latest_metadata(context.instance, None, ("redact",)).get("redact", {})]
    return _pii_result(pipeline.check_redacted_all([(meta, recorded_path(meta)) for meta in metas]))


def _partition_pii_check(asset: str, paths):
    @dg.asset_check(
        asset=asset,
        name=f"{asset}_has_no_residual_pii",
        blocking=True,
        partitions_def=candidates,
        description=f"No personal data in clear in the {asset} output.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        k = context.partition_key
        found = paths(context.instance, k) if asset in ("replay", "grade", "labels", "discover") else paths(k)
        return _pii_result(pipeline.residual_pii(found, metadata=latest_metadata(context.instance, k, (asset,))))

    return _check


DOWNSTREAM = ("redact", "sample", "labels", "replay", "grade", "discover", "estimate", "report", "observed")
UNPARTITIONED = ("redact", "sample")


def latest_metadata(instance: dg.DagsterInstance, partition: str | None, assets=DOWNSTREAM) -> dict:
    """asset -> the metadata of its latest materialisation (of this partition where partitioned)."""
    out = {}
    for asset in assets:
        parts = [partition] if partition and asset not in UNPARTITIONED else None
        flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=parts)
        for rec in instance.fetch_materializations(flt, limit=1).records:
            if rec.asset_materialization:
                out[asset] = dict(rec.asset_materialization.metadata)
    return out


def recorded_path(metadata: dict) -> UPath | None:
    """The file a materialisation recorded in its metadata (`path`: in the lake, or a report), if any."""
    v = metadata.get("path")
    v = getattr(v, "value", v)
    return lake.location(v) if v else None


def _recorded(asset: str):
    """The file of the asset's latest materialisation for a partition (where it recorded one)."""

    def paths(instance: dg.DagsterInstance, k: str) -> list[UPath]:
        p = recorded_path(latest_metadata(instance, k, (asset,)).get(asset, {}))
        return [p or lake.current(asset, k)]

    return paths


replay_pii = _partition_pii_check("replay", _recorded("replay"))
grade_pii = _partition_pii_check("grade", _recorded("grade"))
labels_pii = _partition_pii_check("labels", _recorded("labels"))
discover_pii = _partition_pii_check("discover", _recorded("discover"))
observed_pii = _partition_pii_check(
    "observed", lambda k: [p for p in [lake.lake_path("observed", k)] if lake.exists(p)]
)


@dg.asset_check(
    asset="report",
    name="report_has_no_residual_pii",
    blocking=True,
    partitions_def=candidates,
    description="No personal data in clear in the report, its summary, or any Dagster metadata downstream of redact.",
)
def report_pii(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    k = context.partition_key
    report = recorded_path(latest_metadata(context.instance, k, ("report",)).get("report", {})) or pipeline.report_path(
        k
    )
    paths = [report, report.with_name("summary.md")]
    return _pii_result(pipeline.residual_pii(paths, metadata=latest_metadata(context.instance, k)))


@dg.asset_check(
    asset="replay",
    blocking=True,
    partitions_def=candidates,
    description="Share of the sample replayed without a terminal error.",
)
def replay_completeness(context: dg.AssetCheckExecutionContext, settings: Settings) -> dg.AssetCheckResult:
    rows = lake.read_rows(_recorded("replay")(context.instance, context.partition_key)[0])
    ok = sum(r["status"] == "ok" for r in rows)
    share = ok / len(rows) if rows else 0.0
    required = settings.resolve().min_completeness_pct
    passed = share * 100 >= required
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "completeness_pct": dg.MetadataValue.float(round(100 * share, 2)),
            "ok": ok,
            "replayed": len(rows),
            "required_pct": dg.MetadataValue.float(float(required)),
        },
        description=None
        if passed
        else (f"{ok} of {len(rows)} conversations replayed ({share:.1%}), {required:g}% required"),
    )


all_checks = [
    redact_has_no_residual_pii,
    replay_pii,
    grade_pii,
    labels_pii,
    discover_pii,
    observed_pii,
    report_pii,
    replay_completeness,
]
