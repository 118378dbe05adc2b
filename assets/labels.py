import os

import dagster as dg

from deploysim import pipeline
from assets.common import result


@dg.asset(code_version="1", group_name="traffic", kinds={"python", "parquet"})
def labels() -> dg.MaterializeResult:
    """Human labels (CSV/JSONL from DEPLOYSIM_LABELS) for grader calibration and PPI++; optional."""
    return result(pipeline.run_labels(os.environ.get("DEPLOYSIM_LABELS", "")))
