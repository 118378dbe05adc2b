import dagster as dg

from assets.common import result, upstream_versions
from deploysim import discover as disc
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["replay", "grade"],
    partitions_def=candidates,
    code_version="2",
    group_name="simulation",
    owners=OWNERS,
    kinds={"python", "parquet"},
)
def discover(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Possible new failure modes: clusters of answers that differ most from the baseline's and that no
    taxonomy grader flagged, each with its share of traffic, top terms and redacted examples; named in one
    line by the judge when one is configured."""
    s = settings.resolve()
    up = upstream_versions(context, ["replay", "grade"])
    meta = disc.run_discover(context.partition_key, replay_version=up["replay"], grade_version=up["grade"], settings=s)
    return result(meta, settings=s, upstream=up)
