{# A value as a SQL string literal: single-quoted, inner single quotes doubled (it's -> 'it''s').
   Every path, glob and value that goes into SQL passes through it; nothing is pasted raw. #}
{% macro sql_literal(value) %}
  {{- return("'" ~ (value | string).replace("'", "''") ~ "'") -}}
{% endmacro %}
