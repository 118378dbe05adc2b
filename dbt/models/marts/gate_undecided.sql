-- The run's gated behaviours the evidence does not decide yet. Its has_no_rows test warns: an
-- undecided gate is neither a pass nor a block (the CLI exits 3 and says how many more conversations).
{{ config(materialized='view', tags=['decision']) }}

select * from {{ ref('release_gate') }}
where status = 'inconclusive' and {{ candidate_filter() }} and run_id = {{ sql_literal(run_id()) }}
