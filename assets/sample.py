import dagster as dg

from assets.common import result, upstream_versions
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.resources import Settings


class SampleConfig(dg.Config):
    sample_size: int | None = None  # this run's sample size (default: the settings')
    seed: int | None = None  # this run's seed (default: the settings')


@dg.asset(deps=["redact"], code_version="1", group_name="traffic", owners=OWNERS, kinds={"python", "parquet"})
def sample(context: dg.AssetExecutionContext, config: SampleConfig, settings: Settings) -> dg.MaterializeResult:
    """Stratified sample (topic x chat/agent) with inclusion probabilities; shared by all candidates."""
    s = settings.resolve()
    size = config.sample_size if config.sample_size is not None else s.sample_size
    seed = config.seed if config.seed is not None else s.seed
    up = upstream_versions(context, ["redact"])
    return result(pipeline.run_sample(size, seed, redact_version=up["redact"]), upstream=up)
