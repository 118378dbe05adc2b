import dagster as dg

from assets.common import chain_versions, result
from deploysim import pipeline
from deploysim.report import tables
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates
from orchestration.resources import Settings


@dg.asset(
    deps=["replay", "sample"],
    partitions_def=candidates,
    code_version="2",
    group_name="simulation",
    owners=OWNERS,
    kinds={"python", "parquet"},
)
def labels(context: dg.AssetExecutionContext, settings: Settings) -> dg.MaterializeResult:
    """Human labels of this candidate's (and its baseline's) turns for grader calibration and PPI++:
    DEPLOYSIM_LABELS (CSV/JSONL, or demo-review:N), else those imported with `deploysim labels`."""
    s = settings.resolve()
    source = s.labels
    reviewer = None
    if source.startswith("demo-review:"):  # the demo's stand-in reviewers, from the test kit
        from deploysim_testkit.demo import reviewer_of

        reviewer = reviewer_of(int(source.split(":", 1)[1]))
    up, base = chain_versions(context, ["replay"])  # the sample and redacted versions: as the replay pinned them
    meta = pipeline.run_labels(
        context.partition_key,
        source,
        reviewer=reviewer,
        settings=s,
        replay_version=up["replay"],
        baseline_replay_version=base,
    )
    return result(tables.labels_metadata(meta), settings=s, upstream=up)
