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

),

-- The medians come from each conversation's replies ranked in order (a sort, which DuckDB spills
-- to disk), not from quantile_cont per conversation: that keeps every conversation's values in
-- memory at once and ran out of it at 3M conversations. The continuous median is the middle
-- value, or the mean of the two middle ones, which is what quantile_cont(0.5) interpolates.
ranked as (

    select
        org_id,
        conversation_id,
        reply_seconds,
        row_number() over (partition by org_id, conversation_id order by reply_seconds) as reply_rank,
        count(reply_seconds) over (partition by org_id, conversation_id) as replies_timed
    from replies
    where reply_seconds is not null

),

ranked_business as (

    select
        org_id,
        conversation_id,
        reply_business_seconds,
        row_number() over (partition by org_id, conversation_id order by reply_business_seconds)
            as reply_rank,
        count(reply_business_seconds) over (partition by org_id, conversation_id) as replies_timed
    from replies
    where reply_business_seconds is not null

),

medians as (

    select org_id, conversation_id, cast(avg(reply_seconds) as {{ drift_type_double() }}) as reply_time_p50_seconds
    from ranked
    where reply_rank in (floor((replies_timed + 1) / 2.0), floor((replies_timed + 2) / 2.0))
    group by org_id, conversation_id

),

business_medians as (

    select
        org_id,
        conversation_id,
        cast(avg(reply_business_seconds) as {{ drift_type_double() }}) as reply_time_p50_business_seconds
    from ranked_business
    where reply_rank in (floor((replies_timed + 1) / 2.0), floor((replies_timed + 2) / 2.0))
    group by org_id, conversation_id

),

totals as (

    select
        org_id,
        conversation_id,
        count(reply_seconds) as agent_reply_count,
        max(reply_seconds) as reply_time_max_seconds,
        -- summed in whole microseconds: a sum of doubles depends on the order rows arrive in
        cast(coalesce(sum(cast(round(reply_seconds * 1000000) as bigint)), 0) as {{ drift_type_double() }})
            / 1000000.0 as contact_wait_seconds,
        max(reply_business_seconds) as reply_time_max_business_seconds,
        max(_source_synced_at) as _source_synced_at
    from replies
    group by org_id, conversation_id

)

select
    totals.org_id,
    totals.conversation_id,
    totals.agent_reply_count,
    medians.reply_time_p50_seconds,
    totals.reply_time_max_seconds,
    totals.contact_wait_seconds,
    business_medians.reply_time_p50_business_seconds,
    totals.reply_time_max_business_seconds,
    totals._source_synced_at,
    '{{ drift_business_hours_version() }}' as _business_hours_version
from totals
left join medians
    on totals.org_id = medians.org_id
    and totals.conversation_id = medians.conversation_id
left join business_medians
    on totals.org_id = business_medians.org_id
    and totals.conversation_id = business_medians.conversation_id
