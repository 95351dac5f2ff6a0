{#
  A model's custom schema is used as-is (marts -> `marts`, not `<target>_marts`): the documented interface
  names `marts.*` exactly, and BI tools and the serving copy read those names.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
