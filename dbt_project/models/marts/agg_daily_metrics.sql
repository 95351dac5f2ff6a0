{{ config(**drift_daily_aggregate_config('conversations', on_schema_change='append_new_columns')) }}
{#-
  Incremental runs recompute whole days: every (org_id, metric_date) holding a conversation that
  fct_conversations rebuilt since this table last read it, plus every day whose conversation count
  no longer matches (a conversation erased or moved to another day). A day left with no
  conversations is written as a zero row and removed by the post-hook, so the delete+insert also
  clears it. Together this makes an incremental run equal a full refresh.
-#}

with conversations as (

    {{ drift_conversations_by_day() }}

),

days_to_build as (

    {{ drift_days_to_build('conversations', 'conversations', 'conversations',
                           rebuild_all_without=['reply_time_p50_seconds', 'one_touch_conversations']) }}

),

-- Reply times are per reply, not per conversation (macros/metrics/daily_reply_times.sql).
daily_replies as (

    {{ drift_daily_reply_times('conversations') }}

),

daily as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        count(conversations.conversation_id) as conversations,
        count(conversations.first_response_seconds) as responded_conversations,
        {{ drift_percentile_cont('conversations.first_response_seconds', 0.5) }}
            as first_response_p50_seconds,
        {{ drift_percentile_cont('conversations.first_response_seconds', 0.9) }}
            as first_response_p90_seconds,
        count(case when conversations.has_bot then 1 end) as bot_conversations,
        count(case when conversations.handed_off then 1 end) as handed_off_conversations,
        count(conversations.first_closed_at) as closed_conversations,
        {{ drift_percentile_cont('conversations.open_to_close_seconds', 0.5) }}
            as open_to_close_p50_seconds,
        {{ drift_percentile_cont('conversations.open_to_close_seconds', 0.9) }}
            as open_to_close_p90_seconds,
        count(case when conversations.touch_class = 'one' then 1 end) as one_touch_conversations,
        count(case when conversations.touch_class = 'two' then 1 end) as two_touch_conversations,
        count(case when conversations.touch_class = 'multi' then 1 end) as multi_touch_conversations,
        max(conversations._refreshed_at) as _fct_refreshed_at
    from days_to_build
    left join conversations
        on days_to_build.org_id = conversations.org_id
        and days_to_build.metric_date = conversations.metric_date
    group by days_to_build.org_id, days_to_build.metric_date

)

select
    daily.org_id,
    daily.metric_date,
    cast(conversations as bigint) as conversations,
    cast(responded_conversations as bigint) as responded_conversations,
    first_response_p50_seconds,
    first_response_p90_seconds,
    cast(bot_conversations as bigint) as bot_conversations,
    cast(handed_off_conversations as bigint) as handed_off_conversations,
    {{ drift_rate('handed_off_conversations', 'bot_conversations') }} as handoff_rate,
    cast(closed_conversations as bigint) as closed_conversations,
    open_to_close_p50_seconds,
    open_to_close_p90_seconds,
    daily_replies.reply_time_p50_seconds,
    daily_replies.reply_time_p90_seconds,
    cast(one_touch_conversations as bigint) as one_touch_conversations,
    cast(two_touch_conversations as bigint) as two_touch_conversations,
    cast(multi_touch_conversations as bigint) as multi_touch_conversations,
    _fct_refreshed_at
from daily
left join daily_replies
    on daily.org_id = daily_replies.org_id
    and daily.metric_date = daily_replies.metric_date
