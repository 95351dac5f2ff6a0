{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild(drift_business_hours_changed()) }}") }}
-- Seconds of [first_contact_message_at, first_agent_message_at] that fall inside business hours:
-- the response range-joined to the schedule's open periods (int_drift__business_hours_calendar,
-- where DST, holidays and the time zone are resolved, as for the reply times and the SLAs).
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql), all
-- of them when the schedule changed.
{%- set version = drift_business_hours_version() %}

with rebuild as (

    {{ drift_conversations_to_rebuild(drift_business_hours_changed()) }}

),

responses as (

    select
        first_responses.org_id,
        first_responses.conversation_id,
        first_responses.first_contact_message_at as response_started_at,
        first_responses.first_agent_message_at as response_ended_at,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__first_response') }} as first_responses
    inner join rebuild
        on first_responses.org_id = rebuild.org_id
        and first_responses.conversation_id = rebuild.conversation_id
    where first_responses.first_contact_message_at is not null
        and first_responses.first_agent_message_at is not null

),

open_periods as (

    select opens_at, closes_at from {{ ref('int_drift__business_hours_calendar') }}

),

business_seconds as (

    {{ drift_business_seconds('responses', 'response_started_at', 'response_ended_at',
                              ['org_id', 'conversation_id']) }}

)

select
    responses.org_id,
    responses.conversation_id,
    cast(coalesce(business_seconds.seconds_in_hours, 0) as {{ drift_type_double() }})
        as first_response_business_seconds,
    responses._source_synced_at,
    '{{ version }}' as _business_hours_version
from responses
left join business_seconds
    on responses.org_id = business_seconds.org_id
    and responses.conversation_id = business_seconds.conversation_id
