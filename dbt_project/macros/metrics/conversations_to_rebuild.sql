{#-
  The one definition of what an incremental per-conversation model rebuilds.

  `int_drift__conversation_watermarks` holds, per conversation, the newest load time of every
  raw row its metrics read. Every incremental model downstream of it stores the watermark it
  built each conversation from (`_source_synced_at`) and, on an incremental run, rebuilds the
  conversations whose watermark is newer than the newest one it holds (loads are stamped with
  their write time, so a later load always has a newer stamp), or that have unstamped rows.
  On a full build it is every conversation. Models join their inputs to this set: that join
  is their incremental filter, and the full path runs the very same SQL over all of them.
  Conversations that left raw (`is_departed`) are never rebuilt: they have no rows to build.

  `extra_condition` (SQL over `{{ this }}`-free expressions) rebuilds everything when true,
  e.g. a changed business-hours schedule. So does a table built before a column the model
  documents (drift_documented_columns_missing): an upgrade that adds columns to an existing
  table (on_schema_change='append_new_columns') fills them on every row, not only on the rows
  that happen to change.

  `incremental` (default: is_incremental()) false gives every conversation, for a model that
  builds whole on an incremental run (fct_sla_events over a table an older version built).
-#}
{% macro drift_conversations_to_rebuild(extra_condition=none, incremental=none) -%}
    select
        watermarks.org_id,
        watermarks.conversation_id,
        watermarks.source_synced_at
    from {{ ref('int_drift__conversation_watermarks') }} as watermarks
    where not coalesce(watermarks.is_departed, false)
    {%- if (is_incremental() if incremental is none else incremental) %}
        and (
            watermarks.has_unstamped_rows
            or watermarks.source_synced_at > (
                select coalesce(max(_source_synced_at), cast('1900-01-01' as timestamp)) from {{ this }}
            )
            {%- if extra_condition %}
            or ({{ extra_condition }})
            {%- endif %}
            or {{ drift_documented_columns_missing() }}
        )
    {%- endif %}
{%- endmacro %}


{#- SQL `true` when the incremental model's table (`this`) lacks a column its yml documents, else
    `false`. Compared before dbt appends the new columns, so the run that adds them rebuilds every
    row: a new column computed from data the rows already had (a conversation's playbook) would
    otherwise stay null on every row that did not change. A documented column the SQL does not
    produce would rebuild every run: tests/test_dbt_models.py checks docs and tables agree. -#}
{% macro drift_documented_columns_missing() -%}
    {#- A unit test's `this` is a string (its given rows): nothing was built before. -#}
    {%- if not execute or not is_incremental() or this is string -%}
        {{ return('false') }}
    {%- endif -%}
    {%- set built = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- for name in model.columns if name | lower not in built -%}
        {{ return('true') }}
    {%- endfor -%}
    {{ return('false') }}
{%- endmacro %}


{#-
  Pre-hook of every incremental per-conversation model: before the model's SQL runs, delete the
  rows of the conversations it is about to rebuild, and of conversations that left raw (hard
  deletes: `is_departed` in the watermarks). Without it a conversation whose rebuild yields no
  row (say its only chat message was deleted) would keep its old rows: delete+insert only
  replaces the keys the new rows carry. The model then finds at least these conversations again
  (its newest stored watermark can only have dropped), and delete+insert replaces any extra ones
  it rebuilds. Both are lookups by key (a semi-join with a small set); the departed set stays
  in the watermarks, so a model that missed a run still drops them on its next.

  `only_rebuilt_where` (SQL over the alias `rebuild`): clear only the rebuilt conversations it
  holds for, for a model that reads its own previous rows while it rebuilds (the rest are
  replaced by the delete+insert); it must hold for every conversation whose rebuild can yield
  no row.
-#}
{% macro drift_clear_conversations_to_rebuild(extra_condition=none, only_rebuilt_where=none) -%}
    {%- if is_incremental() %}
    delete from {{ this }} as built
    where exists (
        select 1
        from (
            select rebuild.org_id, rebuild.conversation_id
            from ({{ drift_conversations_to_rebuild(extra_condition) }}) as rebuild
            {%- if only_rebuilt_where %}
            where {{ only_rebuilt_where }}
            {%- endif %}

            union all

            select departed.org_id, departed.conversation_id
            from {{ ref('int_drift__conversation_watermarks') }} as departed
            where departed.is_departed
        ) as cleared
        where cleared.org_id = built.org_id
            and cleared.conversation_id = built.conversation_id
    )
    {%- else %}
    select 1
    {%- endif %}
{%- endmacro %}


{#- `relation` in int_drift__conversation_watermarks' `loads`: on an incremental run only its rows
    loaded after the previous build (the CTE `previous_build`) or not stamped at all (`stamp`
    null), filtered before they are joined with the rebuilt conversations; every row otherwise. -#}
{% macro drift_rows_loaded_since(relation, stamp) -%}
    {%- if is_incremental() -%}
    (
        select loaded.*
        from {{ relation }} as loaded
        cross join previous_build
        where loaded.{{ stamp }} is null or loaded.{{ stamp }} > previous_build.source_synced_at
    )
    {%- else -%}
    {{ relation }}
    {%- endif -%}
{%- endmacro %}


{#- SQL true when `this` (an incremental model storing `version_column` on each row) holds a row
    built under another version than `version` (a digest of the schedule, the SLA policies...):
    the model then rebuilds every conversation (drift_conversations_to_rebuild's
    extra_condition). False on a full build. -#}
{% macro drift_version_changed(version_column, version) -%}
    {%- if is_incremental() -%}
    exists (select 1 from {{ this }} where {{ version_column }} <> '{{ version }}')
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}
