{# Fails when the model has any row (used as the release gate on gate_failures). #}
{% test has_no_rows(model) %}
select * from {{ model }}
{% endtest %}
