{#
  Post-hook of release_gate: write each exported candidate's rows to
  $DEPLOYSIM_HOME/lake/gate/candidate=<key>/release_gate.parquet for the report.
  DuckDB's plain COPY does not create parent directories, and dbt has no mkdir; a zero-row
  COPY ... (PARTITION_BY ...) creates its target directory (one level), so mkdir() uses that,
  level by level. The Python side therefore need not create lake/gate/ beforehand.
#}
{% macro mkdir(path) %}
  {% do run_query("COPY (select 1 as p, 1 as x where false) TO " ~ sql_literal(path) ~ " (FORMAT parquet, PARTITION_BY (p), OVERWRITE_OR_IGNORE)") %}
{% endmacro %}

{% macro export_gate(rel) %}
  {% if execute %}
    {% set home = env_var('DEPLOYSIM_HOME') %}
    {% if candidate() %}
      {% set keys = [candidate()] %}
    {% else %}
      {% set keys = run_query('select distinct candidate from ' ~ rel).columns[0].values() %}
    {% endif %}
    {% do mkdir(home ~ '/lake') %}
    {% do mkdir(home ~ '/lake/gate') %}
    {% for key in keys %}
      {% set dir = home ~ '/lake/gate/candidate=' ~ key %}
      {% do mkdir(dir) %}
      {% do run_query("COPY (select * from " ~ rel ~ " where candidate = " ~ sql_literal(key) ~ " order by behaviour) TO "
                      ~ sql_literal(dir ~ '/release_gate.parquet') ~ " (FORMAT parquet)") %}
    {% endfor %}
  {% endif %}
  select 1
{% endmacro %}
