-- The failing behaviours of the run's candidate. The has_no_rows test on this model is the gate.
{{ config(materialized='view', tags=['decision']) }}  -- own Dagster step with release_decision

select * from {{ ref('release_gate') }}
where status = 'fail' and {{ candidate_filter() }}
