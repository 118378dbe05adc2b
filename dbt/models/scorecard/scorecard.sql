-- The forecast scorecard per candidate x behaviour, as deploysim.estimation.scorecard computed it (the
-- `observed` asset, from the candidate's estimate and its production rates): computed once, in Python;
-- kept here, one set of rows per candidate.
-- depends_on: {{ source('lake', 'observed') }}
{{ config(materialized='incremental', unique_key='candidate', incremental_strategy='delete+insert') }}

with s as (
    {{ lake_rows('scorecard', 'scorecard.parquet', {
        'candidate': 'varchar', 'behaviour': 'varchar', 'forecast_rate': 'double', 'forecast_ci_low': 'double',
        'forecast_ci_high': 'double', 'observed_rate': 'double', 'previous_rate': 'double',
        'multiplicative_error': 'double', 'forecast_direction': 'integer', 'observed_direction': 'integer',
        'direction_right': 'boolean', 'moved': 'boolean'}) }}
)

select * from s
where {{ candidate_filter() }}
