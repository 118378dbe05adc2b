{{ config(
    materialized='incremental',
    unique_key='candidate',
    incremental_strategy='delete+insert',
) }}

select
    candidate,
    count(*) as n,
    count(*) filter (where status = 'ok') as n_ok,
    count(*) filter (where status = 'error') as n_error,
    count(*) filter (where status = 'ok') / count(*) as completeness,
    sum(http_calls) as http_calls,
    sum(cached_calls) as cached_calls,
    sum(prompt_tokens) as prompt_tokens,
    sum(completion_tokens) as completion_tokens,
    sum(prompt_tokens + completion_tokens) as tokens
from {{ ref('stg_replay') }}
where {{ candidate_filter() }}
group by candidate
