{#-
  SQL `true` when `this` (an incremental model) exists but lacks one of `columns`: the table was
  built by an older version of the model, before those columns existed. The model then rebuilds
  every row (on_schema_change='append_new_columns' has added the columns, empty), so an upgrade
  needs no --full-refresh and leaves no row with nulls a full refresh would not have.
  `false` on a full build and while dbt parses.
-#}
{% macro drift_columns_missing(columns) -%}
    {%- if not execute or not is_incremental() -%}
        {{ return('false') }}
    {%- endif -%}
    {%- set built = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- for column in columns if column | lower not in built -%}
        {{ return('true') }}
    {%- endfor -%}
    {{ return('false') }}
{%- endmacro %}
