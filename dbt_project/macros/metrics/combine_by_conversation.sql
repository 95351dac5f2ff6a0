{#-
  Per-conversation parts (models with at most one row per conversation) combined into one row
  per conversation: a `union all` of the parts, each contributing its own columns (typed nulls
  for the others), grouped by conversation. What a chain of left joins on the same key gives,
  for the conversations of `driver` (a relation or CTE with org_id, conversation_id and the
  driver's columns): the others' rows for conversations the driver lacks are dropped.

  Why not joins: DuckDB keeps the hash table of every join in a chain in memory while it probes
  them together, and cannot spill them. fct_conversations joined twelve parts; at 3M
  conversations under the default 2GB memory limit it ran out ("failed to pin block"), and at
  1M under 600MB. A grouped union is one hash aggregate, which DuckDB (and Postgres) spill to
  disk like any other: the same 1M conversations combined under 100MB.

  `parts`: a list of {'relation': ..., 'columns': {name: sql_type}} (sql_type `boolean` is
  combined with bool_or, anything else with max: each part has one row per conversation, so
  either returns its value). `driver_columns`: the driver's columns, {name: sql_type}.
  `filter_to`: a relation or CTE of the conversations wanted; the parts are read for those only
  (an incremental run's changed conversations) instead of whole; none reads them whole.
-#}
{% macro drift_combine_by_conversation(driver, driver_columns, parts, filter_to=none) -%}
    {%- set columns = [] -%}
    {%- for name, sql_type in driver_columns.items() -%}
        {%- do columns.append((name, sql_type, -1)) -%}
    {%- endfor -%}
    {%- for part in parts -%}
        {%- set index = loop.index0 -%}
        {%- for name, sql_type in part['columns'].items() -%}
            {%- do columns.append((name, sql_type, index)) -%}
        {%- endfor -%}
    {%- endfor %}
    select
        combined.org_id,
        combined.conversation_id,
        {%- for name, sql_type, _ in columns %}
        {{ 'bool_or' if sql_type == 'boolean' else 'max' }}(combined.{{ name }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        select
            driver.org_id,
            driver.conversation_id,
            true as is_driver,
            {%- for name, sql_type, source in columns %}
            {{ 'driver.' ~ name if source == -1 else 'cast(null as ' ~ sql_type ~ ')' }} as {{ name }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ driver }} as driver
        {%- for part in parts %}
        {%- set index = loop.index0 %}

        union all

        select
            part.org_id,
            part.conversation_id,
            false as is_driver,
            {%- for name, sql_type, source in columns %}
            {{ 'part.' ~ name if source == index else 'cast(null as ' ~ sql_type ~ ')' }} as {{ name }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ part['relation'] }} as part
        {%- if filter_to is not none %}
        where exists (
            select 1
            from {{ filter_to }} as wanted
            where wanted.org_id = part.org_id
                and wanted.conversation_id = part.conversation_id
        )
        {%- endif %}
        {%- endfor %}
    ) as combined
    group by combined.org_id, combined.conversation_id
    having bool_or(combined.is_driver)
{%- endmacro %}
