{#
  What a per-candidate dbt run works on, from --vars (set by orchestration/dbt_assets.py from the
  Dagster instance): the Dagster run id, and the versions of the lake inputs it reads. The gate
  tables keep one evaluation per (candidate, run_id).
#}

{# The Dagster run id of this evaluation (dbt's own invocation id when run by hand). #}
{% macro run_id() %}{{ return((var('run_id', '') | string) or invocation_id) }}{% endmacro %}

{# The lake file of a Python asset at the version this run reads (var <asset>_version), or, without a
   version, every version of every candidate through the dbt source. Paths go in with sql_literal. #}
{% macro lake_input(asset) %}
  {%- set version = var(asset ~ '_version', '') | string -%}
  {%- if version and candidate() -%}
    {%- set path = lake_root() ~ '/' ~ asset ~ '/candidate=' ~ candidate() ~ '/version=' ~ version ~ '/' ~ asset ~ '.parquet' -%}
    read_parquet({{ sql_literal(path) }}, hive_partitioning=false)
  {%- else -%}
    {{ source('lake', asset) }}
  {%- endif -%}
{% endmacro %}

{# Where release_gate_export writes this run's gate rows:
   <lake>/gate/candidate=<key>/run=<run id>/release_gate.parquet (on local disk the folder is made by
   the caller). dbt-duckdb pastes the location between single quotes, so they are doubled here. #}
{% macro gate_export_location() %}
  {%- set path = lake_root() ~ '/gate/candidate=' ~ candidate() ~ '/run=' ~ run_id() ~ '/release_gate.parquet' -%}
  {{- return(path | replace("'", "''")) -}}
{% endmacro %}
