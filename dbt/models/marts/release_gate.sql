-- One row per candidate x run x behaviour with its threshold verdict: every gate evaluation is kept
-- (append-only history keyed by candidate and the Dagster run id; a retried run replaces its own rows).
-- Each row names the estimate and sample versions it was decided on.
--
-- Two failure reasons per gated behaviour:
--   over_rate: the estimated rate exceeds max_rate;
--   worse:     the candidate is worse than the baseline by more than the margin max_increase, by a
--              one-sided test of H0: diff <= max_increase (z = (diff - max_increase) / diff_se),
--              with Holm's step-down procedure across the candidate's gated behaviours, so the
--              family-wise error of "worse" verdicts is at most alpha = 2.5% (seed holm_critical_z).
{{ config(
    materialized='incremental',
    unique_key=['candidate', 'run_id'],
    on_schema_change='append_new_columns',
    incremental_strategy='delete+insert',
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
        case when t.behaviour is not null then
            (e.diff - t.max_increase)
            / greatest(coalesce(e.diff_se, (e.diff_ci_high - e.diff_ci_low) / (2 * 1.959964)), 1e-12)
        end as z_worse
    from e
    left join {{ ref('gate_thresholds') }} t on t.behaviour = e.behaviour
),

ranked as (
    select
        j.*,
        sum(case when has_threshold then 1 else 0 end) over (partition by candidate) as holm_m,
        case when has_threshold then
            row_number() over (partition by candidate, has_threshold order by z_worse desc, behaviour)
        end as holm_step
    from j
),

stepped as (
    select
        r.*,
        c.critical_z as holm_critical_z,
        r.z_worse > c.critical_z as step_rejects
    from ranked r
    left join {{ ref('holm_critical_z') }} c on c.m = r.holm_m and c.step = r.holm_step
),

h as (
    select
        s.*,
        -- step-down: a step rejects only when every step before it rejected
        has_threshold and coalesce(bool_and(coalesce(step_rejects, false)) over (
            partition by candidate, has_threshold order by holm_step
            rows between unbounded preceding and current row), false) as worse
    from stepped s
)

select
    candidate,
    {{ sql_literal(run_id()) }} as run_id,
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
                100 * diff, 100 * diff_ci_low, 100 * diff_ci_high, 100 * max_increase) end,
            case when worse then printf('Holm z %.2f > %.2f (step %d of %d)',
                z_worse, holm_critical_z, holm_step, holm_m) end)
        else printf('rate %.1f%% <= max %.1f%%; vs baseline %+.1f pts (95%% CI %+.1f to %+.1f) within margin %.1f pts',
            100 * rate, 100 * max_rate, 100 * diff, 100 * diff_ci_low, 100 * diff_ci_high, 100 * max_increase)
    end as reason,
    z_worse,
    holm_m,
    holm_step,
    holm_critical_z,
    worse as holm_worse,
    estimate_version,
    sample_version,
    replay_version,
    grade_version,
    current_timestamp::timestamp as decided_at
from h
