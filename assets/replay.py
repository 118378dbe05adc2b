"""The replay: a graph of ops so that its shards fan out (DynamicOut) to whatever runs the run's steps:
one after another in-process, in parallel under the multiprocess executor, one pod each under k8s."""

import warnings

import dagster as dg

from assets.common import chain_versions, progress_logger, result
from deploysim import pipeline
from deploysim.report import tables
from orchestration.metadata import OWNERS
from orchestration.partitions import candidates


class PlanConfig(dg.Config):
    shards: int = 1  # parts of the sample replayed as separate steps


class ShardConfig(dg.Config):
    deadline_s: float | None = None  # seconds a shard's replay may take; items not done by then fail


@dg.op(ins={"sample": dg.In(dg.Nothing), "redact": dg.In(dg.Nothing)}, out=dg.DynamicOut(dict))
def replay_plan(context: dg.OpExecutionContext, config: PlanConfig):
    """The sampled conversations dealt into shards, at the traffic versions this replay pins."""
    up, base = chain_versions(context, ["sample", "redact"])
    parts = pipeline.plan_replay(
        context.partition_key, config.shards, up["sample"], up["redact"], baseline_replay_version=base
    )
    context.log.info(f"{sum(len(p['ids']) for p in parts)} conversations in {len(parts)} shard(s)")
    for part in parts:
        yield dg.DynamicOutput(part | {"upstream": up}, mapping_key=f"shard_{part['shard']}")


@dg.op
def replay_shard(context: dg.OpExecutionContext, config: ShardConfig, part: dict) -> dict:
    """One shard replayed against the candidate (its share of the candidate's concurrency and limits)."""
    label = f"replay shard {part['shard'] + 1}/{part['shards']}" if part["shards"] > 1 else "replay"
    return pipeline.replay_shard(part, progress=progress_logger(context, label=label), deadline_s=config.deadline_s)


@dg.op(out=dg.Out(dg.Nothing))
def replay_merge(context: dg.OpExecutionContext, parts: list[dict]):
    """The shards merged into the candidate's replay version."""
    meta = pipeline.merge_replay(parts)
    mat = result(tables.replay_metadata(meta), upstream=parts[0]["upstream"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # Output's data_version
        yield dg.Output(None, metadata=mat.metadata, data_version=mat.data_version)


def _ops_config(c: dict) -> dict:
    return {
        "replay_plan": {"config": {"shards": c["shards"]}},
        "replay_shard": {"config": {"deadline_s": c["deadline_s"]}},
    }


@dg.graph_asset(
    ins={
        "sample": dg.AssetIn(dagster_type=dg.Nothing),
        # the sample's frame of days: redact's days as a whole, not a day named like the candidate
        "redact": dg.AssetIn(dagster_type=dg.Nothing, partition_mapping=dg.AllPartitionMapping()),
    },
    partitions_def=candidates,
    code_version="3",
    group_name="simulation",
    owners=OWNERS,
    kinds={"python", "parquet"},
    config=dg.ConfigMapping(
        config_schema={
            "shards": dg.Field(int, default_value=1, description="parts replayed as separate steps"),
            "deadline_s": dg.Field(
                dg.Noneable(float), default_value=None, description="seconds a shard's replay may take"
            ),
        },
        config_fn=_ops_config,
    ),
)
def replay(sample, redact):
    """The candidate's regenerated last turn for every sampled conversation (agent loops included),
    replayed in shards that run as parallel steps and merged into one version."""
    return replay_merge(replay_plan(sample=sample, redact=redact).map(replay_shard).collect())
