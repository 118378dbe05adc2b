-- The failing behaviours of the run's candidate in this run. The has_no_rows test on this model is the gate.
{{ config(materialized='view', tags=['decision']) }}  -- own Dagster step with release_decision

select * from {{ ref('release_gate') }}
where status = 'fail' and {{ candidate_filter() }} and run_id = {{ sql_literal(run_id()) }}
