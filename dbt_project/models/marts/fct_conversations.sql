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
  One row per conversation, combined from the intermediate models. Incremental runs rebuild the
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

{%- set timestamp, bigint, double, text = dbt.type_timestamp(), dbt.type_bigint(), drift_type_double(), dbt.type_string() %}
{#- Every per-conversation part, combined by key (macros/metrics/combine_by_conversation.sql:
    a grouped union, not a chain of twelve joins, which ran out of memory at 3M conversations). -#}
parts as (

    {{ drift_combine_by_conversation(
        'conversations',
        {'status': text, 'contact_id': bigint, 'inbox_id': bigint, 'created_at': timestamp,
         'updated_at': timestamp, 'related_playbook_id': bigint, 'source_synced_at': timestamp},
        [
            {'relation': ref('int_drift__first_response'), 'columns': {
                'first_contact_message_at': timestamp, 'first_agent_message_at': timestamp,
                'first_responder_user_id': bigint, 'first_response_seconds': double}},
            {'relation': ref('int_drift__business_hours_first_response'), 'columns': {
                'first_response_business_seconds': double}},
            {'relation': ref('int_drift__bot_handoff'), 'columns': {
                'has_bot': 'boolean', 'handed_off': 'boolean'}},
            {'relation': ref('int_drift__close_times'), 'columns': {
                'first_closed_at': timestamp, 'reopen_count': bigint}},
            {'relation': ref('int_drift__message_counts'), 'columns': {
                'message_count': bigint, 'contact_message_count': bigint,
                'agent_message_count': bigint, 'bot_message_count': bigint}},
            {'relation': ref('int_drift__first_touch'), 'columns': {
                'utm_source': text, 'utm_medium': text, 'utm_campaign': text, 'landing_page': text}},
            {'relation': ref('int_drift__conversation_meetings'), 'columns': {
                'meeting_booked': 'boolean', 'first_meeting_scheduled_at': timestamp}},
            {'relation': ref('int_drift__reply_time_metrics'), 'columns': {
                'agent_reply_count': bigint, 'reply_time_p50_seconds': double,
                'reply_time_max_seconds': double, 'contact_wait_seconds': double,
                'reply_time_p50_business_seconds': double, 'reply_time_max_business_seconds': double}},
            {'relation': ref('int_drift__agent_activity'), 'columns': {
                'unique_agent_count': bigint, 'agent_switch_count': bigint}},
            {'relation': ref('int_drift__touch_resolution'), 'columns': {'touch_class': text}},
        ],
        filter_to='rebuild' if is_incremental() else none
    ) }}

),

playbooks as (

    select * from {{ ref('int_drift__playbook_names') }}

)

select
    parts.org_id,
    parts.conversation_id,
    parts.status,
    parts.contact_id,
    parts.inbox_id,
    parts.created_at,
    parts.updated_at,
    parts.first_contact_message_at,
    parts.first_agent_message_at,
    parts.first_responder_user_id,
    parts.first_response_seconds,
    parts.first_response_business_seconds,
    coalesce(parts.has_bot, false) as has_bot,
    coalesce(parts.handed_off, false) as handed_off,
    parts.first_closed_at,
    {{ drift_seconds_between('parts.created_at', 'parts.first_closed_at') }} as open_to_close_seconds,
    cast(coalesce(parts.reopen_count, 0) as bigint) as reopen_count,
    {{ drift_seconds_between('parts.first_agent_message_at', 'parts.first_closed_at') }} as handle_time_seconds,
    cast(coalesce(parts.message_count, 0) as bigint) as message_count,
    cast(coalesce(parts.contact_message_count, 0) as bigint) as contact_message_count,
    cast(coalesce(parts.agent_message_count, 0) as bigint) as agent_message_count,
    cast(coalesce(parts.bot_message_count, 0) as bigint) as bot_message_count,
    parts.utm_source,
    parts.utm_medium,
    parts.utm_campaign,
    parts.landing_page,
    parts.related_playbook_id as playbook_id,
    playbooks.playbook_name,
    coalesce(parts.meeting_booked, false) as meeting_booked,
    parts.first_meeting_scheduled_at,
    cast(coalesce(parts.agent_reply_count, 0) as bigint) as agent_reply_count,
    parts.reply_time_p50_seconds,
    parts.reply_time_max_seconds,
    cast(coalesce(parts.contact_wait_seconds, 0) as {{ drift_type_double() }}) as contact_wait_seconds,
    parts.reply_time_p50_business_seconds,
    parts.reply_time_max_business_seconds,
    cast(coalesce(parts.unique_agent_count, 0) as bigint) as unique_agent_count,
    cast(coalesce(parts.agent_switch_count, 0) as bigint) as agent_switch_count,
    parts.touch_class,
    parts.source_synced_at as _source_synced_at,
    {{ drift_run_started_at() }} as _refreshed_at,
    '{{ business_hours_version }}' as _business_hours_version
from parts
left join playbooks
    on parts.org_id = playbooks.org_id
    and parts.related_playbook_id = playbooks.playbook_id
