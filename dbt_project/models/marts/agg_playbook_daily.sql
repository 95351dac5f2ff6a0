{{ config(**drift_daily_aggregate_config('conversations')) }}
{#-
  Rows are (org_id, metric_date, playbook_id) of conversations with a playbook; incremental runs
  replace whole days, chosen like agg_daily_metrics' (drift_days_to_build): days holding a
  conversation fct_conversations rebuilt since this table last read it (a meeting booked or
  cancelled, a playbook renamed: fct rebuilds those conversations, so their days follow) and
  days whose count of playbook conversations no longer matches. A day left without any is
  written as a zero row and removed by the post-hook.
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

playbook_days as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        conversations.playbook_id,
        -- One name per playbook: fct rebuilds every conversation of a renamed playbook at once.
        max(conversations.playbook_name) as playbook_name,
        count(conversations.conversation_id) as conversations,
        count(case when conversations.contact_message_count > 0 then 1 end) as engaged_conversations,
        count(case when conversations.handed_off then 1 end) as handed_off_conversations,
        count(case when conversations.meeting_booked then 1 end) as meetings_booked,
        {{ drift_percentile_cont('conversations.first_response_seconds', 0.5) }}
            as first_response_p50_seconds,
        max(conversations._refreshed_at) as _fct_refreshed_at
    from days_to_build
    left join conversations
        on days_to_build.org_id = conversations.org_id
        and days_to_build.metric_date = conversations.metric_date
    group by days_to_build.org_id, days_to_build.metric_date, conversations.playbook_id

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
