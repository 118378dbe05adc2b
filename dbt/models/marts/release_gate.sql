-- One row per candidate x behaviour with its threshold verdict.
-- unique_key is candidate (not candidate, behaviour) so a re-run replaces the whole candidate
-- partition: a behaviour dropped from the estimate can't leave a stale row behind.
{{ config(
    materialized='incremental',
    unique_key='candidate',
    incremental_strategy='delete+insert',
    post_hook="{{ export_gate(this) }}",
) }}

with e as (
    select * from {{ ref('stg_estimate') }}
    where {{ candidate_filter() }}
),

j as (
    select
        e.*,
        t.max_rate,
        t.max_increase,
        t.severity,
        t.behaviour is not null as has_threshold,
        e.rate > t.max_rate as over_rate,
        e.diff_ci_low > t.max_increase as worse
    from e
    left join {{ ref('gate_thresholds') }} t on t.behaviour = e.behaviour
)

select
    candidate,
    behaviour,
    rate,
    ci_low,
    ci_high,
    baseline_rate,
    baseline_ci_low,
    baseline_ci_high,
    diff,
    diff_ci_low,
    diff_ci_high,
    n_applicable,
    n_flagged,
    max_rate,
    max_increase,
    severity,
    case
        when not has_threshold then 'no_threshold'
        when over_rate or worse then 'fail'
        else 'pass'
    end as status,
    case
        when not has_threshold then 'no threshold for this behaviour'
        when over_rate or worse then concat_ws('; ',
            case when over_rate then printf('rate %.1f%% > max %.1f%%', 100 * rate, 100 * max_rate) end,
            case when worse then printf('worse than baseline: %+.1f pts (95%% CI %+.1f to %+.1f) > margin %.1f pts',
                100 * diff, 100 * diff_ci_low, 100 * diff_ci_high, 100 * max_increase) end)
        else printf('rate %.1f%% <= max %.1f%%; vs baseline %+.1f pts (95%% CI %+.1f to %+.1f) within margin %.1f pts',
            100 * rate, 100 * max_rate, 100 * diff, 100 * diff_ci_low, 100 * diff_ci_high, 100 * max_increase)
    end as reason
from j
