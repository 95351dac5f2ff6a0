{#-
  How every daily aggregate of fct_conversations is materialized, which drift_days_to_build
  (below) relies on: an incremental table whose delete+insert key is the day, so a rebuilt day
  replaces all its rows; a day left empty is written as one zero row (`count_column` = 0) and
  removed by the post-hook, so the delete+insert clears it too. `on_schema_change`:
  'append_new_columns' for a model that fills new columns on its next run (rebuild_all_without).
-#}
{% macro drift_daily_aggregate_config(count_column, on_schema_change='fail') -%}
    {{ return({
        'materialized': 'incremental',
        'unique_key': ['org_id', 'metric_date'],
        'incremental_strategy': 'delete+insert',
        'on_schema_change': on_schema_change,
        'post_hook': ['delete from {{ this }} where ' ~ count_column ~ ' = 0'],
    }) }}
{%- endmacro %}


{#-
  fct_conversations with metric_date, the UTC day of created_at: the day every daily aggregate
  files a conversation under (and drift_days_to_build compares counts by).
-#}
{% macro drift_conversations_by_day() -%}
    select
        *,
        cast(created_at as date) as metric_date
    from {{ ref('fct_conversations') }}
{%- endmacro %}


{#- `numerator` / `denominator` as a double, null when the denominator is 0 (a handoff rate of a
    day without bot conversations is unknown, not 0). -#}
{% macro drift_rate(numerator, denominator) -%}
    case when {{ denominator }} > 0 then cast({{ numerator }} as {{ drift_type_double() }}) / {{ denominator }} end
{%- endmacro %}


{#-
  The (org_id, metric_date) days a daily aggregate of fct_conversations builds, one definition
  for agg_daily_metrics, agg_agent_daily, agg_attribution_daily and agg_playbook_daily.

  `conversations`: the CTE of fct_conversations with metric_date; `counted`: the CTE whose rows
  the aggregate counts per day (conversations itself, or a subset: those with a playbook, those
  with a first responder), `count_column` the column holding that count in the aggregate.

  A full build: every day of `counted`. An incremental run: days holding a conversation that
  fct_conversations rebuilt since the aggregate (`this`) last read it (its max
  `_fct_refreshed_at`), plus days whose count in the aggregate (summed over its rows of the
  day) no longer matches the count now: a conversation erased, moved to another day, or out of
  `counted`. With `rebuild_all_without`, every day when `this` lacks one of those columns
  (built by an older version: macros/metrics/columns_missing.sql); `extra_days`, a select of
  (org_id, metric_date), adds the model's own reasons.
-#}
{% macro drift_days_to_build(conversations, counted, count_column, rebuild_all_without=[], extra_days=none) %}
    {%- if is_incremental() %}
    select distinct changed.org_id, changed.metric_date
    from {{ conversations }} as changed
    where changed._refreshed_at > (
        select coalesce(max(_fct_refreshed_at), cast('1900-01-01' as timestamp)) from {{ this }}
    )

    union

    select
        coalesce(built.org_id, current_counts.org_id) as org_id,
        coalesce(built.metric_date, current_counts.metric_date) as metric_date
    from (
        select org_id, metric_date, sum({{ count_column }}) as day_count
        from {{ this }}
        group by org_id, metric_date
    ) as built
    full outer join (
        select org_id, metric_date, count(*) as day_count
        from {{ counted }}
        group by org_id, metric_date
    ) as current_counts
        on built.org_id = current_counts.org_id
        and built.metric_date = current_counts.metric_date
    where coalesce(built.day_count, 0) <> coalesce(current_counts.day_count, 0)
    {%- if rebuild_all_without and drift_columns_missing(rebuild_all_without) == 'true' %}

    union

    select distinct org_id, metric_date
    from {{ counted }}
    {%- endif %}
    {%- if extra_days %}

    union

    {{ extra_days }}
    {%- endif %}
    {%- else %}
    select distinct org_id, metric_date
    from {{ counted }}
    {%- endif %}
{% endmacro %}


{#-
  The rows of `relation` (a CTE with org_id and metric_date) on the days to build, the
  `days_to_build` CTE: a filter (a semi join, whose hash table holds only days), in a full
  build too, where it keeps every row. An aggregate reading these rows joins nothing else, and
  a full build and an incremental one plan alike. Joined instead in one chain with the days'
  conversations and their replies, the plan followed DuckDB's estimate of days_to_build, far
  too high in incremental runs: at 10M conversations agg_agent_daily's incremental run hashed
  every reply, then every reply with its day (1.4 GB of hash tables, 520 MB of it pinned),
  where its full build hashed the conversations once (docs/scaling.md).
-#}
{% macro drift_rows_of_days_to_build(relation) %}
    select *
    from {{ relation }}
    where exists (
        select 1
        from days_to_build
        where days_to_build.org_id = {{ relation }}.org_id
            and days_to_build.metric_date = {{ relation }}.metric_date
    )
{% endmacro %}
