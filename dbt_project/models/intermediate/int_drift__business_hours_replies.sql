{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild(drift_business_hours_changed()) }}") }}
-- Seconds of each reply's wait [waiting_since_at, replied_at] that fall inside business hours:
-- the wait range-joined to the schedule's open periods (int_drift__business_hours_calendar,
-- DST and holidays resolved there), the overlaps summed.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql), all
-- of them when the schedule changed.
with rebuild as (

    {{ drift_conversations_to_rebuild(drift_business_hours_changed()) }}

),

replies as (

    select
        replies.org_id,
        replies.conversation_id,
        replies.turn_number,
        replies.waiting_since_at,
        replies.replied_at,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__replies') }} as replies
    inner join rebuild
        on replies.org_id = rebuild.org_id
        and replies.conversation_id = rebuild.conversation_id
    where replies.replied_at is not null

),

open_periods as (

    select opens_at, closes_at from {{ ref('int_drift__business_hours_calendar') }}

),

business_seconds as (

    {{ drift_business_seconds('replies', 'waiting_since_at', 'replied_at',
                              ['org_id', 'conversation_id', 'turn_number']) }}

)

select
    replies.org_id,
    replies.conversation_id,
    replies.turn_number,
    cast(coalesce(business_seconds.seconds_in_hours, 0) as {{ drift_type_double() }})
        as reply_business_seconds,
    replies._source_synced_at,
    '{{ drift_business_hours_version() }}' as _business_hours_version
from replies
left join business_seconds
    on replies.org_id = business_seconds.org_id
    and replies.conversation_id = business_seconds.conversation_id
    and replies.turn_number = business_seconds.turn_number
