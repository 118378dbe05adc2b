-- The estimate this run gates (var estimate_version), with the versions it was made from.
-- depends_on: {{ source('lake', 'estimate') }}
select
    cast(candidate as varchar) as candidate,
    cast(behaviour as varchar) as behaviour,
    cast(n_sampled as integer) as n_sampled,
    cast(n_applicable as integer) as n_applicable,
    cast(n_flagged as integer) as n_flagged,
    cast(rate as double) as rate,
    cast(ci_low as double) as ci_low,
    cast(ci_high as double) as ci_high,
    cast(baseline_rate as double) as baseline_rate,
    cast(baseline_ci_low as double) as baseline_ci_low,
    cast(baseline_ci_high as double) as baseline_ci_high,
    cast(baseline_flagged as integer) as baseline_flagged,
    cast(diff as double) as diff,
    cast(diff_ci_low as double) as diff_ci_low,
    cast(diff_ci_high as double) as diff_ci_high,
    cast(diff_se as double) as diff_se,
    cast(look as integer) as look,
    cast(alpha as double) as alpha,
    cast(more_needed as bigint) as more_needed,
    cast(version as varchar) as estimate_version,
    cast(sample_version as varchar) as sample_version,
    cast(replay_version as varchar) as replay_version,
    cast(grade_version as varchar) as grade_version
from {{ lake_input('estimate') }}
