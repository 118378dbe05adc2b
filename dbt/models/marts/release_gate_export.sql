-- This run's gate rows of the run's candidate, written by dbt-duckdb's external materialisation to
-- lake/gate/candidate=<key>/run=<run id>/release_gate.parquet: what the report and the CLI read.
{{ config(materialized='external', location=gate_export_location()) }}

select * from {{ ref('release_gate') }}
where {{ candidate_filter() }} and run_id = {{ sql_literal(run_id()) }}
order by behaviour
