{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild(drift_business_hours_changed()) }}") }}
-- Per conversation with a contact turn: how many replies it got, the median and longest reply
-- time (calendar and business hours), and the contact's total wait (the sum of reply times;
-- an unanswered last turn is not a reply and adds nothing).
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql), all
-- of them when the business-hours schedule changed.
with rebuild as (

    {{ drift_conversations_to_rebuild(drift_business_hours_changed()) }}

),

replies as (

    select
        replies.org_id,
        replies.conversation_id,
        replies.reply_seconds,
        business_hours_replies.reply_business_seconds,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__replies') }} as replies
    inner join rebuild
        on replies.org_id = rebuild.org_id
        and replies.conversation_id = rebuild.conversation_id
    left join {{ ref('int_drift__business_hours_replies') }} as business_hours_replies
        on replies.org_id = business_hours_replies.org_id
        and replies.conversation_id = business_hours_replies.conversation_id
        and replies.turn_number = business_hours_replies.turn_number

)

select
    org_id,
    conversation_id,
    count(reply_seconds) as agent_reply_count,
    {{ drift_percentile_cont('reply_seconds', 0.5) }} as reply_time_p50_seconds,
    max(reply_seconds) as reply_time_max_seconds,
    -- summed in whole microseconds: a sum of doubles depends on the order rows arrive in
    cast(coalesce(sum(cast(round(reply_seconds * 1000000) as bigint)), 0) as {{ drift_type_double() }})
        / 1000000.0 as contact_wait_seconds,
    {{ drift_percentile_cont('reply_business_seconds', 0.5) }} as reply_time_p50_business_seconds,
    max(reply_business_seconds) as reply_time_max_business_seconds,
    max(_source_synced_at) as _source_synced_at,
    '{{ drift_business_hours_version() }}' as _business_hours_version
from replies
group by org_id, conversation_id
