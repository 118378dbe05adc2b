{# The candidate of this run (--vars '{candidate: <key>}'), or '' for all candidates. #}
{% macro candidate() %}{{ return(var('candidate', '') | string) }}{% endmacro %}

{# SQL predicate restricting to the run's candidate (true when no candidate is set). #}
{% macro candidate_filter(col='candidate') %}
  {%- if candidate() -%} {{ col }} = {{ sql_literal(candidate()) }} {%- else -%} true {%- endif -%}
{% endmacro %}
