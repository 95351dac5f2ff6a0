{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'conversation_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=[
            "delete from {{ this }} as fct
             where not exists (
                 select 1 from {{ ref('stg_drift__conversations') }} as conversations
                 where conversations.org_id = fct.org_id
                     and conversations.conversation_id = fct.conversation_id
             )"
        ]
    )
}}
{#-
  Incremental runs rebuild only the conversations whose raw rows (conversation, messages,
  status events) were loaded after the newest load this table already reflects, plus every
  row when the business-hours schedule changed. The post-hook drops conversations that left
  raw (erasure), so an incremental run equals a full refresh.
-#}
{%- set business_hours_version = drift_business_hours_version() %}
{#- Loads are stamped when written, so a strictly newer stamp means a later load. Raise the
    lookback if a loader ever stamps rows before a long wait (they would otherwise be missed). #}
{%- set lookback_minutes = var('incremental_lookback_minutes', 0) | int %}

{#- The incremental path reads these directly; dbt parses with is_incremental() false. #}
-- depends_on: {{ ref('stg_drift__messages') }}
-- depends_on: {{ ref('stg_drift__status_events') }}

with

{% if is_incremental() %}
{#-
  Incremental: find the conversations to rebuild from the load stamps alone (filters on
  synced_at / recorded_at, no per-conversation aggregation), keep only their raw rows, and run
  the intermediate models' SQL (macros/conversation_metrics.sql) on those. The intermediate
  views would read and aggregate every message: DuckDB does not push this semi-join into them.
-#}
previous_build as (

    select
        coalesce(
            {{ dbt.dateadd('minute', -1 * lookback_minutes, 'max(_source_synced_at)') }},
            cast('1900-01-01' as timestamp)
        ) as source_synced_at,
        count(case when _business_hours_version <> '{{ business_hours_version }}' then 1 end)
            as rows_on_other_schedule
    from {{ this }}

),

-- A conversation is rebuilt when one of its raw rows is unstamped or loaded after the newest
-- load this table reflects (the same as its watermark moving), or when the schedule changed.
conversations_to_rebuild as (

    select conversations.org_id, conversations.conversation_id
    from {{ ref('stg_drift__conversations') }} as conversations
    cross join previous_build
    where conversations.synced_at is null
        or conversations.synced_at > previous_build.source_synced_at
        or previous_build.rows_on_other_schedule > 0

    union

    select messages.org_id, messages.conversation_id
    from {{ ref('stg_drift__messages') }} as messages
    cross join previous_build
    where messages.synced_at is null
        or messages.synced_at > previous_build.source_synced_at

    union

    select status_events.org_id, status_events.conversation_id
    from {{ ref('stg_drift__status_events') }} as status_events
    cross join previous_build
    where status_events.recorded_at is null
        or status_events.recorded_at > previous_build.source_synced_at

),

scoped_conversations as (

    {{ drift_rows_of(ref('stg_drift__conversations'), 'conversations_to_rebuild') }}

),

scoped_messages as (

    {{ drift_rows_of(ref('stg_drift__messages'), 'conversations_to_rebuild') }}

),

scoped_status_events as (

    {{ drift_rows_of(ref('stg_drift__status_events'), 'conversations_to_rebuild') }}

),

scoped_chat_messages as (

    {{ drift_chat_messages_sql('scoped_messages') }}

),

scoped_first_responses as (

    {{ drift_first_response_sql('scoped_chat_messages') }}

),

scoped_status_history as (

    {{ drift_status_history_sql('scoped_status_events') }}

),

watermarks as (

    {{ drift_conversation_watermarks_sql('scoped_conversations', 'scoped_messages', 'scoped_status_events') }}

),

conversations_to_build as (

    select
        scoped_conversations.*,
        watermarks.source_synced_at
    from scoped_conversations
    left join watermarks
        on scoped_conversations.org_id = watermarks.org_id
        and scoped_conversations.conversation_id = watermarks.conversation_id

),

first_responses as (

    select * from scoped_first_responses

),

business_hours_responses as (

    {{ drift_business_hours_first_response_sql('scoped_first_responses') }}

),

bot_handoffs as (

    {{ drift_bot_handoff_sql('scoped_chat_messages') }}

),

close_times as (

    {{ drift_close_times_sql('scoped_conversations', 'scoped_status_history') }}

),

message_counts as (

    {{ drift_message_counts_sql('scoped_chat_messages') }}

)

{% else %}
conversations as (

    select * from {{ ref('stg_drift__conversations') }}

),

watermarks as (

    select * from {{ ref('int_drift__conversation_watermarks') }}

),

conversations_to_build as (

    select
        conversations.*,
        watermarks.source_synced_at
    from conversations
    left join watermarks
        on conversations.org_id = watermarks.org_id
        and conversations.conversation_id = watermarks.conversation_id

),

first_responses as (

    select * from {{ ref('int_drift__first_response') }}

),

business_hours_responses as (

    select * from {{ ref('int_drift__business_hours_first_response') }}

),

bot_handoffs as (

    select * from {{ ref('int_drift__bot_handoff') }}

),

close_times as (

    select * from {{ ref('int_drift__close_times') }}

),

message_counts as (

    select * from {{ ref('int_drift__message_counts') }}

)
{% endif %}

select
    conversations.org_id,
    conversations.conversation_id,
    conversations.status,
    conversations.contact_id,
    conversations.inbox_id,
    conversations.created_at,
    conversations.updated_at,
    first_responses.first_contact_message_at,
    first_responses.first_agent_message_at,
    first_responses.first_responder_user_id,
    first_responses.first_response_seconds,
    business_hours_responses.first_response_business_seconds,
    coalesce(bot_handoffs.has_bot, false) as has_bot,
    coalesce(bot_handoffs.handed_off, false) as handed_off,
    close_times.first_closed_at,
    {{ drift_seconds_between('conversations.created_at', 'close_times.first_closed_at') }}
        as open_to_close_seconds,
    cast(coalesce(close_times.reopen_count, 0) as bigint) as reopen_count,
    {{ drift_seconds_between('first_responses.first_agent_message_at', 'close_times.first_closed_at') }}
        as handle_time_seconds,
    cast(coalesce(message_counts.message_count, 0) as bigint) as message_count,
    cast(coalesce(message_counts.contact_message_count, 0) as bigint) as contact_message_count,
    cast(coalesce(message_counts.agent_message_count, 0) as bigint) as agent_message_count,
    cast(coalesce(message_counts.bot_message_count, 0) as bigint) as bot_message_count,
    conversations.source_synced_at as _source_synced_at,
    {{ drift_run_started_at() }} as _refreshed_at,
    '{{ business_hours_version }}' as _business_hours_version
from conversations_to_build as conversations
left join first_responses
    on conversations.org_id = first_responses.org_id
    and conversations.conversation_id = first_responses.conversation_id
left join business_hours_responses
    on conversations.org_id = business_hours_responses.org_id
    and conversations.conversation_id = business_hours_responses.conversation_id
left join bot_handoffs
    on conversations.org_id = bot_handoffs.org_id
    and conversations.conversation_id = bot_handoffs.conversation_id
left join close_times
    on conversations.org_id = close_times.org_id
    and conversations.conversation_id = close_times.conversation_id
left join message_counts
    on conversations.org_id = message_counts.org_id
    and conversations.conversation_id = message_counts.conversation_id
