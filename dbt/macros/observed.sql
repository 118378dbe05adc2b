{#
  Rows a Python asset wrote under the lake (lake_root()) as <dir>/candidate=<NAME>/<file>, cast to the given
  columns ({name: type}); an empty relation of the same shape when none exist yet (before any release).
#}
{% macro lake_rows(dir, file, columns) %}
  {%- set pattern = lake_root() ~ '/' ~ dir ~ '/*/' ~ file -%}
  {%- set found = execute and (run_query("select count(*) from glob(" ~ sql_literal(pattern) ~ ")").columns[0].values()[0] > 0) -%}
  {%- if found %}
    select
    {%- for name, type in columns.items() %}
        cast({{ name }} as {{ type }}) as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
    from read_parquet({{ sql_literal(pattern) }}, hive_partitioning=false, union_by_name=true)
  {%- else %}
    select
    {%- for name, type in columns.items() %}
        null::{{ type }} as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
    where false
  {%- endif %}
{% endmacro %}
