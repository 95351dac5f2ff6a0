{#-
  The backlog at the end of each UTC day, by inbox: conversations whose status at that instant
  (after every change before midnight) is open, with how long they had been open since
  created_at, and those pending. From the status periods (int_drift__status_periods: created
  open, then every recorded status event, webhook, poll and report, then the status now), so a
  reopened conversation is back in the backlog from its reopen. Days run from each period's
  start to the day of the org's newest known time (conversations' created_at / updated_at,
  status events' changed_at): the last day is its end as far as the data knows.
  Rows only for (day, inbox) with an open or pending conversation. A table rebuilt each run:
  a conversation left open adds a row-day for every day since, which no incremental day
  window would bound.
-#}

with periods as (

    select *
    from {{ ref('int_drift__status_periods') }}
    where status in ('open', 'pending')

),

newest_times as (

    select org_id, max(updated_at) as newest_at from {{ ref('stg_drift__conversations') }} group by org_id
    union all
    select org_id, max(created_at) as newest_at from {{ ref('stg_drift__conversations') }} group by org_id
    union all
    select org_id, max(changed_at) as newest_at from {{ ref('stg_drift__status_events') }} group by org_id

),

horizons as (

    select org_id, cast(max(newest_at) as date) as last_date
    from newest_times
    group by org_id

),

-- The day ends a period covers: the end of day D is in [started_at, ended_at) when D is on or
-- after the start's day and D + 1 day <= ended_at.
period_days as (

    select
        periods.org_id,
        periods.conversation_id,
        periods.inbox_id,
        periods.created_at,
        periods.status,
        cast(periods.started_at as date) as first_date,
        case
            when periods.ended_at is null then horizons.last_date
            else cast({{ dbt.dateadd('day', -1, 'periods.ended_at') }} as date)
        end as last_date
    from periods
    inner join horizons
        on periods.org_id = horizons.org_id

),

covered_periods as (

    select * from period_days where first_date <= last_date

),

day_ends as (

    {{ drift_expand_dates('covered_periods', 'first_date', 'last_date', 'metric_date') }}

),

backlog as (

    select
        org_id,
        metric_date,
        inbox_id,
        status,
        {{ drift_seconds_between('created_at', dbt.dateadd('day', 1, 'cast(metric_date as timestamp)')) }}
            as age_seconds
    from day_ends

)

select
    org_id,
    metric_date,
    inbox_id,
    cast(count(case when status = 'open' then 1 end) as bigint) as open_conversations,
    {{ drift_percentile_cont("case when status = 'open' then age_seconds end", 0.5) }}
        as open_age_p50_seconds,
    {{ drift_percentile_cont("case when status = 'open' then age_seconds end", 0.9) }}
        as open_age_p90_seconds,
    cast(count(case when status = 'pending' then 1 end) as bigint) as pending_conversations
from backlog
group by org_id, metric_date, inbox_id
