{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'conversation_id'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        pre_hook="{{ drift_clear_conversations_to_rebuild(drift_business_hours_changed()) }}"
    )
}}
{#-
  One row per conversation, joined from the intermediate models. Incremental runs rebuild the
  conversations whose watermark moved (macros/metrics/conversations_to_rebuild.sql: the same
  definition every intermediate model uses), or every row when the business-hours schedule
  changed; the pre-hook drops conversations that left raw (erasure), so an incremental run
  equals a full refresh.
  Columns a newer version adds are appended to a table an older version built rather than
  failing the nightly run, and that run rebuilds every row once (drift_documented_columns_missing),
  so no row keeps a null the new SQL would not give it.
-#}
{%- set business_hours_version = drift_business_hours_version() %}

with

rebuild as (

    {{ drift_conversations_to_rebuild(drift_business_hours_changed()) }}

),

conversations as (

    select conversations.*, rebuild.source_synced_at
    from {{ ref('stg_drift__conversations') }} as conversations
    inner join rebuild
        on conversations.org_id = rebuild.org_id
        and conversations.conversation_id = rebuild.conversation_id

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

),

first_touches as (

    select * from {{ ref('int_drift__first_touch') }}

),

conversation_meetings as (

    select * from {{ ref('int_drift__conversation_meetings') }}

),

playbooks as (

    select * from {{ ref('int_drift__playbook_names') }}

),

reply_time_metrics as (

    select * from {{ ref('int_drift__reply_time_metrics') }}

),

agent_activity as (

    select * from {{ ref('int_drift__agent_activity') }}

),

touch_resolutions as (

    select * from {{ ref('int_drift__touch_resolution') }}

),

-- The attribution, meeting and reply-breadth parts joined on their own, materialized before
-- the rest: DuckDB probes every hash table of one join chain together, and a chain of eleven
-- ran out of memory at 1M conversations under the default 2GB (it cannot spill what it probes).
breadth as materialized (

    select
        conversations.org_id,
        conversations.conversation_id,
        first_touches.utm_source,
        first_touches.utm_medium,
        first_touches.utm_campaign,
        first_touches.landing_page,
        playbooks.playbook_name,
        coalesce(conversation_meetings.meeting_booked, false) as meeting_booked,
        conversation_meetings.first_meeting_scheduled_at,
        cast(coalesce(reply_time_metrics.agent_reply_count, 0) as bigint) as agent_reply_count,
        reply_time_metrics.reply_time_p50_seconds,
        reply_time_metrics.reply_time_max_seconds,
        cast(coalesce(reply_time_metrics.contact_wait_seconds, 0) as {{ drift_type_double() }})
            as contact_wait_seconds,
        reply_time_metrics.reply_time_p50_business_seconds,
        reply_time_metrics.reply_time_max_business_seconds,
        cast(coalesce(agent_activity.unique_agent_count, 0) as bigint) as unique_agent_count,
        cast(coalesce(agent_activity.agent_switch_count, 0) as bigint) as agent_switch_count,
        touch_resolutions.touch_class
    from conversations
    left join first_touches
        on conversations.org_id = first_touches.org_id
        and conversations.conversation_id = first_touches.conversation_id
    left join conversation_meetings
        on conversations.org_id = conversation_meetings.org_id
        and conversations.conversation_id = conversation_meetings.conversation_id
    left join playbooks
        on conversations.org_id = playbooks.org_id
        and conversations.related_playbook_id = playbooks.playbook_id
    left join reply_time_metrics
        on conversations.org_id = reply_time_metrics.org_id
        and conversations.conversation_id = reply_time_metrics.conversation_id
    left join agent_activity
        on conversations.org_id = agent_activity.org_id
        and conversations.conversation_id = agent_activity.conversation_id
    left join touch_resolutions
        on conversations.org_id = touch_resolutions.org_id
        and conversations.conversation_id = touch_resolutions.conversation_id

)

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
    breadth.utm_source,
    breadth.utm_medium,
    breadth.utm_campaign,
    breadth.landing_page,
    conversations.related_playbook_id as playbook_id,
    breadth.playbook_name,
    breadth.meeting_booked,
    breadth.first_meeting_scheduled_at,
    breadth.agent_reply_count,
    breadth.reply_time_p50_seconds,
    breadth.reply_time_max_seconds,
    breadth.contact_wait_seconds,
    breadth.reply_time_p50_business_seconds,
    breadth.reply_time_max_business_seconds,
    breadth.unique_agent_count,
    breadth.agent_switch_count,
    breadth.touch_class,
    conversations.source_synced_at as _source_synced_at,
    {{ drift_run_started_at() }} as _refreshed_at,
    '{{ business_hours_version }}' as _business_hours_version
from conversations
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
left join breadth
    on conversations.org_id = breadth.org_id
    and conversations.conversation_id = breadth.conversation_id
