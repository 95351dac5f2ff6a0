{#-
  The inputs int_drift__status_periods and int_drift__close_times both read, as the CTEs
  `rebuild` (the conversations to rebuild: macros/metrics/conversations_to_rebuild.sql),
  `conversations` (their stg_drift__conversations rows, with the watermark they are built from
  as _source_synced_at) and `status_history` (their recorded status events in order,
  int_drift__status_history). Joining both inputs to one `rebuild` keeps the two models'
  incremental filters the same, so a conversation's periods and its close times move together.
  Use as `with {{ drift_conversation_status_inputs() }}, ...`.
-#}
{% macro drift_conversation_status_inputs() -%}
rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

conversations as (

    {{ drift_rebuilt_rows('stg_drift__conversations', stamped=true) }}

),

status_history as (

    {{ drift_rebuilt_rows('int_drift__status_history') }}

)
{%- endmacro %}


{#- The rows of model `model_name` whose conversation is in the CTE `rebuild`; `stamped` adds
    the watermark they are built from as _source_synced_at. -#}
{% macro drift_rebuilt_rows(model_name, stamped=false) -%}
    select {{ model_name }}.*{% if stamped %}, rebuild.source_synced_at as _source_synced_at{% endif %}
    from {{ ref(model_name) }} as {{ model_name }}
    inner join rebuild
        on {{ model_name }}.org_id = rebuild.org_id
        and {{ model_name }}.conversation_id = rebuild.conversation_id
{%- endmacro %}


{#- The pre-hook condition (over the alias `rebuild`) of int_drift__status_periods: a rebuilt
    conversation without a created_at in stg_drift__conversations may yield no period, so its
    previous rows are cleared before the run; every other one yields at least its first period
    (open from created_at) and its rows are replaced by the delete+insert. -#}
{% macro drift_rebuilt_without_periods() -%}
    not exists (
        select 1
        from {{ ref('stg_drift__conversations') }} as created
        where created.org_id = rebuild.org_id
            and created.conversation_id = rebuild.conversation_id
            and created.created_at is not null
    )
{%- endmacro %}
