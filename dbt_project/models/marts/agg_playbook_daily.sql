{{ config(**drift_daily_aggregate_config('conversations')) }}
{#-
  Rows are (org_id, metric_date, playbook_id) of conversations with a playbook; incremental runs
  replace whole days, chosen like agg_daily_metrics' (drift_days_to_build): days holding a
  conversation fct_conversations rebuilt since this table last read it (a meeting booked or
  cancelled, a playbook renamed: fct rebuilds those conversations, so their days follow) and
  days whose count of playbook conversations no longer matches. A day left without any is
  written as a zero row and removed by the post-hook. The day's conversations are read through
  drift_rows_of_days_to_build (a filter), not joined with the days: an incremental run plans
  as a full build and needs no more memory (agg_daily_metrics).
-#}

with fct as (

    {{ drift_conversations_by_day() }}

),

conversations as (

    select * from fct where playbook_id is not null

),

days_to_build as (

    -- A conversation that lost its playbook changes its day's count, unless another one on that
    -- day gained one, and that one was rebuilt: either way the day is found.
    {{ drift_days_to_build('conversations', 'conversations', 'conversations') }}

),

day_conversations as (

    {{ drift_rows_of_days_to_build('conversations') }}

),

playbook_daily as (

    select
        org_id,
        metric_date,
        playbook_id,
        -- One name per playbook: fct rebuilds every conversation of a renamed playbook at once.
        max(playbook_name) as playbook_name,
        count(*) as conversations,
        count(case when contact_message_count > 0 then 1 end) as engaged_conversations,
        count(case when handed_off then 1 end) as handed_off_conversations,
        count(case when meeting_booked then 1 end) as meetings_booked,
        {{ drift_percentile_cont('first_response_seconds', 0.5) }} as first_response_p50_seconds,
        max(_refreshed_at) as _fct_refreshed_at
    from day_conversations
    group by org_id, metric_date, playbook_id

),

-- A day to build without playbook conversations left: one row with 0 conversations, which the post-hook removes.
playbook_days as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        playbook_daily.playbook_id,
        playbook_daily.playbook_name,
        coalesce(playbook_daily.conversations, 0) as conversations,
        playbook_daily.engaged_conversations,
        playbook_daily.handed_off_conversations,
        playbook_daily.meetings_booked,
        playbook_daily.first_response_p50_seconds,
        playbook_daily._fct_refreshed_at
    from days_to_build
    left join playbook_daily
        on days_to_build.org_id = playbook_daily.org_id
        and days_to_build.metric_date = playbook_daily.metric_date

)

select
    org_id,
    metric_date,
    playbook_id,
    playbook_name,
    cast(conversations as bigint) as conversations,
    cast(engaged_conversations as bigint) as engaged_conversations,
    cast(handed_off_conversations as bigint) as handed_off_conversations,
    cast(meetings_booked as bigint) as meetings_booked,
    {{ drift_rate('meetings_booked', 'conversations') }} as meeting_rate,
    first_response_p50_seconds,
    _fct_refreshed_at
from playbook_days
