import dagster as dg

from assets.common import result, window_versions
from deploysim import pipeline
from orchestration.metadata import OWNERS
from orchestration.resources import Settings


class SampleConfig(dg.Config):
    sample_size: int | None = None  # this run's sample size (default: the settings')
    seed: int | None = None  # this run's seed (default: the settings')
    days: int | None = None  # the window: the last N days of traffic (default: the settings' sample_days)
    end_day: str | None = None  # the window's last day (default: the newest day redacted with traffic)


@dg.asset(deps=["redact"], code_version="2", group_name="traffic", owners=OWNERS, kinds={"python", "parquet"})
def sample(context: dg.AssetExecutionContext, config: SampleConfig, settings: Settings) -> dg.MaterializeResult:
    """Stratified sample (topic x chat/agent) over the last days of traffic, with inclusion probabilities
    over that frame; shared by all candidates."""
    s = settings.resolve()
    size = config.sample_size if config.sample_size is not None else s.sample_size
    seed = config.seed if config.seed is not None else s.seed
    window = window_versions(context.instance, config.days or s.sample_days, config.end_day)
    if not window:
        raise ValueError("no day of traffic is redacted yet: materialise ingest and redact for some days first")
    meta = pipeline.run_sample(size, seed, days=window)
    return result(meta, upstream={"redact": window})
