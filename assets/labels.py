import os

import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.partitions import candidates


@dg.asset(deps=["replay", "sample"], partitions_def=candidates, code_version="2", group_name="simulation",
          kinds={"python", "parquet"})
def labels(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Human labels of this candidate's (and its baseline's) turns for grader calibration and PPI++:
    DEPLOYSIM_LABELS (CSV/JSONL, or demo-review:N), else those imported with `deploysim labels`."""
    source = os.environ.get("DEPLOYSIM_LABELS", "")
    reviewer = None
    if source.startswith("demo-review:"):  # the demo's stand-in reviewers, from the test kit
        from deploysim_testkit.demo import reviewer_of

        reviewer = reviewer_of(int(source.split(":", 1)[1]))
    return result(pipeline.run_labels(context.partition_key, source, reviewer=reviewer))
