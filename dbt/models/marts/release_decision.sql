-- One row per candidate and run: the audit trail of releases (append-only; a retried run replaces its
-- own row). Every decision is written, blocked and inconclusive ones too: it reads release_gate, not
-- gate_failures, so the gate's failing test does not skip it and its own tests run for every candidate.
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
)

select
    g.candidate,
    g.run_id,
    case
        when count(*) filter (where g.status = 'fail') > 0 then 'fail'
        when count(*) filter (where g.status = 'inconclusive') > 0 then 'inconclusive'
        else 'pass'
    end as decision,
    count(*) as n_behaviours,
    count(*) filter (where g.status = 'fail') as n_failed,
    count(*) filter (where g.status = 'inconclusive') as n_inconclusive,
    coalesce(
        string_agg(g.behaviour || ': ' || g.reason, '; ' order by g.behaviour) filter (where g.status = 'fail'),
        string_agg(g.behaviour || ': ' || g.reason, '; ' order by g.behaviour) filter (where g.status = 'inconclusive'),
        'all behaviours within thresholds'
    ) as reasons,
    max(g.more_needed) as more_needed,
    any_value(g.look) as look,
    any_value(r.completeness) as completeness,
    any_value(g.sample_version) as sample_version,
    any_value(g.estimate_version) as estimate_version,
    current_timestamp::timestamp as decided_at
from g
left join {{ ref('replay_summary') }} r on r.candidate = g.candidate
group by g.candidate, g.run_id
