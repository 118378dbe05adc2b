-- One row per candidate and run: the audit trail of releases (append-only; a retried run replaces its
-- own row). Depends on gate_failures (and replay_summary), so when their gate tests fail `dbt build`
-- skips this model and no decision row is written.
{{ config(
    materialized='incremental',
    unique_key=['candidate', 'run_id'],
    on_schema_change='append_new_columns',
    incremental_strategy='delete+insert',
    tags=['decision'],
) }}

with g as (
    select * from {{ ref('release_gate') }}
    where {{ candidate_filter() }} and run_id = {{ sql_literal(run_id()) }}
),

f as (
    select * from {{ ref('gate_failures') }}
)

select
    g.candidate,
    g.run_id,
    case when count(f.behaviour) > 0 then 'fail' else 'pass' end as decision,
    count(*) as n_behaviours,
    count(f.behaviour) as n_failed,
    coalesce(
        string_agg(f.behaviour || ': ' || f.reason, '; ' order by f.behaviour),
        'all behaviours within thresholds'
    ) as reasons,
    any_value(r.completeness) as completeness,
    any_value(g.sample_version) as sample_version,
    any_value(g.estimate_version) as estimate_version,
    current_timestamp::timestamp as decided_at
from g
left join f on f.candidate = g.candidate and f.run_id = g.run_id and f.behaviour = g.behaviour
left join {{ ref('replay_summary') }} r on r.candidate = g.candidate
group by g.candidate, g.run_id
