{#
  Observed production rates written by `deploysim grade --observed NAME`
  ($DEPLOYSIM_HOME/lake/observed/candidate=<NAME>/observed.parquet). An empty relation of the same
  shape when none exist yet, so the scorecard builds (with no rows) before production logs arrive.
#}
{% macro observed_rates() %}
  {%- set pattern = env_var('DEPLOYSIM_HOME') ~ '/lake/observed/*/*.parquet' -%}
  {%- set found = execute and (run_query("select count(*) from glob(" ~ sql_literal(pattern) ~ ")").columns[0].values()[0] > 0) -%}
  {%- if found %}
    select
        cast(candidate as varchar) as candidate,
        cast(behaviour as varchar) as behaviour,
        cast(n_applicable as integer) as n_applicable,
        cast(n_flagged as integer) as n_flagged,
        cast(rate as double) as rate,
        cast(ci_low as double) as ci_low,
        cast(ci_high as double) as ci_high
    from read_parquet({{ sql_literal(pattern) }}, hive_partitioning=false, union_by_name=true)
  {%- else %}
    select null::varchar as candidate, null::varchar as behaviour, null::integer as n_applicable,
        null::integer as n_flagged, null::double as rate, null::double as ci_low, null::double as ci_high
    where false
  {%- endif %}
{% endmacro %}
