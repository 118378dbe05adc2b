import dagster as dg

from deploysim import pipeline
from assets.common import result
from orchestration.resources import Settings


@dg.asset(deps=["redact"], code_version="1", group_name="traffic", kinds={"python", "parquet"})
def sample(settings: Settings) -> dg.MaterializeResult:
    """Stratified sample (topic x chat/agent) with inclusion probabilities; shared by all candidates."""
    return result(pipeline.run_sample(settings.sample_size, settings.seed))
