{# Fails for rows whose column is below min (or null); per_candidate limits it to the run's candidate. #}
{% test min_value(model, column_name, min, per_candidate=false) %}
select * from {{ model }}
where ({{ column_name }} is null or {{ column_name }} < {{ min }})
{%- if per_candidate %} and {{ candidate_filter() }}{% endif %}
{% endtest %}
