{#
  Rows are unique on the combination of `combination_of_columns` (dbt_utils'
  unique_combination_of_columns, written here because dbt packages cannot be downloaded).
#}
{% test unique_combination(model, combination_of_columns) %}
    {%- set columns_csv = combination_of_columns | join(', ') %}
    select {{ columns_csv }}, count(*) as duplicate_rows
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1
{% endtest %}
