{{ config(**drift_daily_aggregate_config('conversations')) }}
{#-
  Rows are (org_id, metric_date, utm_source, utm_medium, utm_campaign); incremental runs replace
  whole days, chosen like agg_daily_metrics' (drift_days_to_build): days holding a conversation
  fct_conversations rebuilt since this table last read it (a late widget event rebuilds its
  conversation there, so its day follows) and days whose conversation count no longer matches.
  A day left without conversations is written as a zero row and removed by the post-hook.
-#}

with fct as (

    select
        by_day.*,
        -- fct keeps only the first touch's fields: a touch carrying none of them tells nothing.
        coalesce(utm_source, utm_medium, utm_campaign, landing_page) is not null as is_tracked
    from ({{ drift_conversations_by_day() }}) as by_day

),

-- Grouping labels are never null (DECISIONLOG.md, Attribution): a conversation without a widget
-- event is '(untracked)'; a first touch without that parameter is '(none)'.
conversations as (

    select
        *,
        case when is_tracked then coalesce(utm_source, '(none)') else '(untracked)' end
            as source_label,
        case when is_tracked then coalesce(utm_medium, '(none)') else '(untracked)' end
            as medium_label,
        case when is_tracked then coalesce(utm_campaign, '(none)') else '(untracked)' end
            as campaign_label
    from fct

),

days_to_build as (

    {{ drift_days_to_build('conversations', 'conversations', 'conversations') }}

),

attribution_days as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        conversations.source_label,
        conversations.medium_label,
        conversations.campaign_label,
        count(conversations.conversation_id) as conversations,
        count(conversations.first_response_seconds) as responded_conversations,
        count(case when conversations.has_bot then 1 end) as bot_conversations,
        count(case when conversations.handed_off then 1 end) as handed_off_conversations,
        {{ drift_percentile_cont('conversations.first_response_seconds', 0.5) }}
            as first_response_p50_seconds,
        {{ drift_percentile_cont('conversations.open_to_close_seconds', 0.5) }}
            as open_to_close_p50_seconds,
        max(conversations._refreshed_at) as _fct_refreshed_at
    from days_to_build
    left join conversations
        on days_to_build.org_id = conversations.org_id
        and days_to_build.metric_date = conversations.metric_date
    group by
        days_to_build.org_id,
        days_to_build.metric_date,
        conversations.source_label,
        conversations.medium_label,
        conversations.campaign_label

)

select
    org_id,
    metric_date,
    source_label as utm_source,
    medium_label as utm_medium,
    campaign_label as utm_campaign,
    cast(conversations as bigint) as conversations,
    cast(responded_conversations as bigint) as responded_conversations,
    cast(bot_conversations as bigint) as bot_conversations,
    cast(handed_off_conversations as bigint) as handed_off_conversations,
    {{ drift_rate('handed_off_conversations', 'bot_conversations') }} as handoff_rate,
    first_response_p50_seconds,
    open_to_close_p50_seconds,
    _fct_refreshed_at
from attribution_days
