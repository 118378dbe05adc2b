-- The scorecard's summary per candidate: median multiplicative error, share within 2x and 10x, and the
-- direction accuracy over behaviours whose observed rate moved at least 1.5x from the previous model.
{{ config(materialized='incremental', unique_key='candidate', incremental_strategy='delete+insert') }}

select
    candidate,
    count(*) as n_behaviours,
    median(multiplicative_error) as median_multiplicative_error,
    avg(case when multiplicative_error <= 2 then 1.0 else 0.0 end) as share_within_2x,
    avg(case when multiplicative_error <= 10 then 1.0 else 0.0 end) as share_within_10x,
    count(*) filter (where moved) as n_moved,
    avg(case when direction_right then 1.0 else 0.0 end) filter (where moved) as direction_accuracy_moved
from {{ ref('scorecard') }}
where {{ candidate_filter() }}
group by candidate
