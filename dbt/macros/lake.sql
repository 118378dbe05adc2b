{# The lake's root: $DEPLOYSIM_LAKE (a folder, s3://BUCKET/PREFIX or gs://...), default $DEPLOYSIM_HOME/lake.
   On object storage DuckDB reaches it through the fsspec filesystem the profile registers.
   sources.yml repeats this expression (macros are not available there). #}
{% macro lake_root() %}
  {{- return((env_var('DEPLOYSIM_LAKE', '') or env_var('DEPLOYSIM_HOME') ~ '/lake').rstrip('/')) -}}
{% endmacro %}
