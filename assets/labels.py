import os
from pathlib import Path

import dagster as dg

from deploysim import calibration, lake, pipeline
from assets.common import result


@dg.asset(code_version="1", group_name="traffic", kinds={"python", "parquet"})
def labels() -> dg.MaterializeResult:
    """Human labels (CSV/JSONL from DEPLOYSIM_LABELS) for grader calibration and PPI++; optional."""
    src = os.environ.get("DEPLOYSIM_LABELS", "")
    if src:
        n = calibration.import_labels(src)
        return result({"labels": n, "source": src, "data_version": pipeline.fingerprint(Path(src))})
    have = len(lake.read_rows(pipeline.labels_path())) if pipeline.labels_path().exists() else 0
    return result({"labels": have, "source": "none configured (set DEPLOYSIM_LABELS)", "data_version": str(have)})
