-- One row per candidate x run x behaviour with its threshold verdict: every gate evaluation is kept
-- (append-only history keyed by candidate and the Dagster run id; a retried run replaces its own rows).
-- Each row names the estimate and sample versions it was decided on.
--
-- Three outcomes per gated behaviour, each saying which test decided it (decided_by):
--   fail:         the rate's interval lies wholly above max_rate (its lower bound is above it), or the
--                 candidate is worse than the baseline by more than the margin max_increase by a
--                 one-sided test of H0: diff <= max_increase (z = (diff - max_increase) / diff_se) with
--                 Holm's step-down procedure across the candidate's gated behaviours (family-wise error
--                 at most alpha = 2.5%, seed holm_critical_z);
--   pass:         the interval lies wholly below max_rate and the candidate is not significantly worse;
--   inconclusive: otherwise; more_needed says how many further conversations the planner expects to
--                 decide it.
-- A round of a sample grown until the gate decides (look >= 1) uses the wider intervals and Holm
-- thresholds of that look (deploysim.estimation.stats.look_alpha), so the rounds together keep 2.5%.
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
        e.ci_low > t.max_rate as over_rate,
        e.ci_high < t.max_rate as under_rate,
        coalesce(e.look, 0) as gate_look,
        coalesce(e.alpha, 0.025) as gate_alpha,
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
    left join {{ ref('holm_critical_z') }} c
        on c.look = r.gate_look and c.m = r.holm_m and c.step = r.holm_step
),

h as (
    select
        s.*,
        printf('%.1f%%', 100 * (1 - 2 * gate_alpha)) as level,
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
        when under_rate then 'pass'
        else 'inconclusive'
    end as status,
    case
        when not has_threshold then null
        when over_rate or worse then concat_ws(' and ',
            case when over_rate then 'rate: interval lower bound above max_rate' end,
            case when worse then 'vs baseline: one-sided z test, Holm-adjusted' end)
        when under_rate then 'rate: interval upper bound below max_rate; vs baseline: one-sided z test, Holm-adjusted'
    end as decided_by,
    case when has_threshold and not (over_rate or worse) and not under_rate then more_needed end as more_needed,
    case
        when not has_threshold then 'no threshold for this behaviour'
        when over_rate or worse then concat_ws('; ',
            case when over_rate then printf('rate %.2f%% (%s CI %.2f%% to %.2f%%) is above max %.1f%%',
                100 * rate, level, 100 * ci_low, 100 * ci_high, 100 * max_rate) end,
            case when worse then printf(
                'worse than baseline: %+.1f pts (%s CI %+.1f to %+.1f) > margin %.1f pts, significant after Holm (z %.2f > %.2f, step %d of %d)',
                100 * diff, level, 100 * diff_ci_low, 100 * diff_ci_high, 100 * max_increase,
                z_worse, holm_critical_z, holm_step, holm_m) end)
        else concat(
            case when under_rate
                then printf('rate %.2f%% (%s CI %.2f%% to %.2f%%) is below max %.1f%%',
                    100 * rate, level, 100 * ci_low, 100 * ci_high, 100 * max_rate)
                else printf('undecided: rate %.2f%% (%s CI %.2f%% to %.2f%%) spans max %.1f%%; ',
                    100 * rate, level, 100 * ci_low, 100 * ci_high, 100 * max_rate)
                    || case when more_needed is null then 'no sample size decides it at this rate'
                        else printf('about %d more conversations would decide it', more_needed) end
            end,
            printf('; vs baseline %+.1f pts (%s CI %+.1f to %+.1f): ',
                100 * diff, level, 100 * diff_ci_low, 100 * diff_ci_high),
            case
                when diff_ci_high <= max_increase then printf('within margin %.1f pts', 100 * max_increase)
                else printf('not significantly worse than margin %.1f pts after Holm (z %.2f <= %.2f, step %d of %d)',
                    100 * max_increase, z_worse, holm_critical_z, holm_step, holm_m)
            end)
    end as reason,
    z_worse,
    holm_m,
    holm_step,
    holm_critical_z,
    worse as holm_worse,
    gate_look as look,
    gate_alpha as alpha,
    estimate_version,
    sample_version,
    replay_version,
    grade_version,
    current_timestamp::timestamp as decided_at
from h
