-- The scorecard's summary per candidate (median multiplicative error, share within 2x and 10x, direction
-- accuracy over behaviours that moved >= 1.5x), as deploysim.estimation.scorecard.summary computed it.
{{ config(materialized='incremental', unique_key='candidate', incremental_strategy='delete+insert') }}

-- depends_on: {{ ref('scorecard') }}
with s as (
    {{ lake_rows('scorecard', 'summary.parquet', {
        'candidate': 'varchar', 'n_behaviours': 'integer', 'median_multiplicative_error': 'double',
        'share_within_2x': 'double', 'share_within_10x': 'double', 'n_moved': 'integer',
        'direction_accuracy_moved': 'double'}) }}
)

select * from s
where {{ candidate_filter() }}
