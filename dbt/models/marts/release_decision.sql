-- One row per candidate. Depends on gate_failures (and replay_summary), so when their gate tests
-- fail `dbt build` skips this model and no decision row is written.
{{ config(
    materialized='incremental',
    unique_key='candidate',
    incremental_strategy='delete+insert',
    tags=['decision'],
) }}

with g as (
    select * from {{ ref('release_gate') }}
    where {{ candidate_filter() }}
),

f as (
    select * from {{ ref('gate_failures') }}
)

select
    g.candidate,
    case when count(f.behaviour) > 0 then 'fail' else 'pass' end as decision,
    count(*) as n_behaviours,
    count(f.behaviour) as n_failed,
    coalesce(
        string_agg(f.behaviour || ': ' || f.reason, '; ' order by f.behaviour),
        'all behaviours within thresholds'
    ) as reasons,
    any_value(r.completeness) as completeness,
    current_timestamp::timestamp as decided_at
from g
left join f on f.candidate = g.candidate and f.behaviour = g.behaviour
left join {{ ref('replay_summary') }} r on r.candidate = g.candidate
group by g.candidate
