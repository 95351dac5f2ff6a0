{{ config(**drift_daily_aggregate_config('conversations')) }}
{#-
  Rows are (org_id, metric_date, utm_source, utm_medium, utm_campaign); incremental runs replace
  whole days, chosen like agg_daily_metrics' (drift_days_to_build): days holding a conversation
  fct_conversations rebuilt since this table last read it (a late widget event rebuilds its
  conversation there, so its day follows) and days whose conversation count no longer matches.
  A day left without conversations is written as a zero row and removed by the post-hook. The
  day's conversations are read through drift_rows_of_days_to_build (a filter), not joined with
  the days: an incremental run plans as a full build and needs no more memory (agg_daily_metrics).
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

day_conversations as (

    {{ drift_rows_of_days_to_build('conversations') }}

),

attribution_daily as (

    select
        org_id,
        metric_date,
        source_label,
        medium_label,
        campaign_label,
        count(*) as conversations,
        count(first_response_seconds) as responded_conversations,
        count(case when has_bot then 1 end) as bot_conversations,
        count(case when handed_off then 1 end) as handed_off_conversations,
        {{ drift_percentile_cont('first_response_seconds', 0.5) }} as first_response_p50_seconds,
        {{ drift_percentile_cont('open_to_close_seconds', 0.5) }} as open_to_close_p50_seconds,
        max(_refreshed_at) as _fct_refreshed_at
    from day_conversations
    group by org_id, metric_date, source_label, medium_label, campaign_label

),

-- A day to build without conversations left: one row with 0 conversations, which the post-hook removes.
attribution_days as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        attribution_daily.source_label,
        attribution_daily.medium_label,
        attribution_daily.campaign_label,
        coalesce(attribution_daily.conversations, 0) as conversations,
        attribution_daily.responded_conversations,
        attribution_daily.bot_conversations,
        attribution_daily.handed_off_conversations,
        attribution_daily.first_response_p50_seconds,
        attribution_daily.open_to_close_p50_seconds,
        attribution_daily._fct_refreshed_at
    from days_to_build
    left join attribution_daily
        on days_to_build.org_id = attribution_daily.org_id
        and days_to_build.metric_date = attribution_daily.metric_date

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
