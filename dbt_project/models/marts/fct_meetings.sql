{{ config(materialized='table') }}
{#-
  One row per meeting, rebuilt whole on every run: meetings are few (a handful a day, against
  hundreds of conversations), so a full rebuild costs one pass over them and one keyed join with
  fct_conversations for the playbook, and it is always equal to a full refresh: a status change,
  a rebooking or a conversation's new playbook shows on the next run without any bookkeeping.
-#}

with meetings as (

    select * from {{ ref('int_drift__meeting_latest') }}

),

conversations as (

    select org_id, conversation_id, playbook_id
    from {{ ref('fct_conversations') }}

)

select
    meetings.org_id,
    meetings.slug,
    meetings.status,
    meetings.is_cancelled,
    meetings.meeting_source,
    meetings.meeting_type,
    meetings.agent_user_id,
    meetings.conversation_id,
    conversations.playbook_id,
    meetings.scheduled_at,
    meetings.slot_start_at,
    {{ drift_seconds_between('meetings.scheduled_at', 'meetings.slot_start_at') }} as lead_time_seconds,
    meetings.conversation_id is not null as booked_in_conversation
from meetings
left join conversations
    on meetings.org_id = conversations.org_id
    and meetings.conversation_id = conversations.conversation_id
