-- Forecast vs observed rate per candidate x behaviour (see deploysim/scorecard.py, which computes the same).
-- forecast: the simulation's estimate; previous: the baseline's rate on the same conversations;
-- observed: production after release, graded by the `observed` asset (or `deploysim grade --observed <candidate>`).
-- depends_on: {{ source('lake', 'observed') }}
-- Ratios use rates floored at half an event (0.5 / n, n the larger applicable count) so a zero stays
-- finite; directions use the raw rates.
{{ config(materialized='incremental', unique_key='candidate', incremental_strategy='delete+insert') }}

with f as (
    select * from {{ ref('stg_estimate') }}
    where {{ candidate_filter() }}
),

o as (
    {{ observed_rates() }}
),

j as (
    select
        f.candidate,
        f.behaviour,
        f.rate as forecast_rate,
        f.ci_low as forecast_ci_low,
        f.ci_high as forecast_ci_high,
        o.rate as observed_rate,
        f.baseline_rate as previous_rate,
        0.5 / greatest(f.n_applicable, o.n_applicable, 1) as half_event
    from f
    join o on o.candidate = f.candidate and o.behaviour = f.behaviour
),

k as (
    select
        j.*,
        greatest(forecast_rate, half_event) as f_,
        greatest(observed_rate, half_event) as o_,
        greatest(previous_rate, half_event) as p_
    from j
)

select
    candidate,
    behaviour,
    forecast_rate,
    forecast_ci_low,
    forecast_ci_high,
    observed_rate,
    previous_rate,
    greatest(f_ / o_, o_ / f_) as multiplicative_error,
    cast(sign(forecast_rate - previous_rate) as integer) as forecast_direction,
    cast(sign(observed_rate - previous_rate) as integer) as observed_direction,
    sign(forecast_rate - previous_rate) = sign(observed_rate - previous_rate) as direction_right,
    greatest(o_ / p_, p_ / o_) >= 1.5 as moved
from k
