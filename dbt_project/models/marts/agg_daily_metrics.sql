{{ config(**drift_daily_aggregate_config('conversations', on_schema_change='append_new_columns')) }}
{#-
  Incremental runs recompute whole days: every (org_id, metric_date) holding a conversation that
  fct_conversations rebuilt since this table last read it, plus every day whose conversation count
  no longer matches (a conversation erased or moved to another day). A day left with no
  conversations is written as a zero row and removed by the post-hook, so the delete+insert also
  clears it. Together this makes an incremental run equal a full refresh.

  Memory: the metrics and the reply times read the conversations of those days
  (drift_rows_of_days_to_build), not a join of the days with them, so an incremental run
  rebuilding every day plans as a full build and needs no more memory; the days join only the
  finished daily rows.
-#}

with conversations as (

    {{ drift_conversations_by_day() }}

),

days_to_build as (

    {{ drift_days_to_build('conversations', 'conversations', 'conversations',
                           rebuild_all_without=['reply_time_p50_seconds', 'one_touch_conversations']) }}

),

day_conversations as (

    {{ drift_rows_of_days_to_build('conversations') }}

),

-- Reply times are per reply, not per conversation (macros/metrics/daily_reply_times.sql).
daily_replies as (

    {{ drift_daily_reply_times('day_conversations') }}

),

daily as (

    select
        org_id,
        metric_date,
        count(*) as conversations,
        count(first_response_seconds) as responded_conversations,
        -- p50 and p90 from one aggregate each (cross_db.sql): a day's values held once
        {{ drift_percentiles_cont('first_response_seconds', [0.5, 0.9]) }} as first_response_percentiles,
        count(case when has_bot then 1 end) as bot_conversations,
        count(case when handed_off then 1 end) as handed_off_conversations,
        count(first_closed_at) as closed_conversations,
        {{ drift_percentiles_cont('open_to_close_seconds', [0.5, 0.9]) }} as open_to_close_percentiles,
        count(case when touch_class = 'one' then 1 end) as one_touch_conversations,
        count(case when touch_class = 'two' then 1 end) as two_touch_conversations,
        count(case when touch_class = 'multi' then 1 end) as multi_touch_conversations,
        max(_refreshed_at) as _fct_refreshed_at
    from day_conversations
    group by org_id, metric_date

)

select
    days_to_build.org_id,
    days_to_build.metric_date,
    -- 0 on a day left without conversations (no `daily` row): the post-hook removes that row
    cast(coalesce(daily.conversations, 0) as bigint) as conversations,
    cast(daily.responded_conversations as bigint) as responded_conversations,
    daily.first_response_percentiles[1] as first_response_p50_seconds,
    daily.first_response_percentiles[2] as first_response_p90_seconds,
    cast(daily.bot_conversations as bigint) as bot_conversations,
    cast(daily.handed_off_conversations as bigint) as handed_off_conversations,
    {{ drift_rate('daily.handed_off_conversations', 'daily.bot_conversations') }} as handoff_rate,
    cast(daily.closed_conversations as bigint) as closed_conversations,
    daily.open_to_close_percentiles[1] as open_to_close_p50_seconds,
    daily.open_to_close_percentiles[2] as open_to_close_p90_seconds,
    daily_replies.reply_time_p50_seconds,
    daily_replies.reply_time_p90_seconds,
    cast(daily.one_touch_conversations as bigint) as one_touch_conversations,
    cast(daily.two_touch_conversations as bigint) as two_touch_conversations,
    cast(daily.multi_touch_conversations as bigint) as multi_touch_conversations,
    daily._fct_refreshed_at
from days_to_build
left join daily
    on days_to_build.org_id = daily.org_id
    and days_to_build.metric_date = daily.metric_date
left join daily_replies
    on days_to_build.org_id = daily_replies.org_id
    and days_to_build.metric_date = daily_replies.metric_date
