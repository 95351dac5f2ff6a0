{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'metric_date'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook=['delete from {{ this }} where open_conversations = 0 and pending_conversations = 0'],
    )
}}
{#-
  The backlog at the end of each UTC day, by inbox: conversations whose status at that instant
  (after every change before midnight) is open, with how long they had been open since
  created_at, and those pending. From the status periods (int_drift__status_periods: created
  open, then every recorded status event, webhook, poll and report, then the status now), so a
  reopened conversation is back in the backlog from its reopen. Days run from each period's
  start to the day of the org's newest known time (conversations' created_at / updated_at,
  status events' changed_at): the last day is its end as far as the data knows.
  Rows only for (day, inbox) with an open or pending conversation.

  Incremental by day: a run rebuilds, per org, the days from the earliest instant where the
  periods of a conversation rebuilt since this table last read them (`_periods_synced_at`)
  differ from what it read (`_periods_changed_from`: a year-old conversation closed today
  changes today's end only), or from its last built day when nothing did (open conversations
  reach the new last day), to the org's last day; every day when a conversation left raw since (`_departed_conversations`
  counts them) or the org was never built. Each rebuilt day is written with a zero row, which
  the delete+insert keys on and the post-hook removes, so a day left with nothing open is
  cleared. A full rebuild read every period, every run: 9.4 s of a 46 s webhook refresh at 3M;
  from each changed conversation's creation, 3.5 s of an 11 s one at 1M.
-#}
{%- set incremental = is_incremental()
        and drift_columns_missing(['_periods_synced_at', '_departed_conversations']) == 'false' %}
{%- set periods_read_at -%}
    (select coalesce(max(_periods_synced_at), cast('1900-01-01' as {{ dbt.type_timestamp() }})) from {{ this }})
{%- endset %}

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

departed as (

    select org_id, count(*) as departed_conversations
    from {{ ref('int_drift__conversation_watermarks') }}
    where is_departed
    group by org_id

),

{%- if incremental %}

built as (

    select
        org_id,
        min(metric_date) as first_built_date,
        max(metric_date) as last_built_date,
        max(_departed_conversations) as departed_conversations
    from {{ this }}
    group by org_id

),

-- Per org, the earliest day a status change reaches: of each conversation whose periods were
-- rebuilt since this table last read them, the instant they start to differ from the rows it
-- read (int_drift__status_periods._periods_changed_from; null: the same), or, when that is not
-- what it compares with (a new conversation, unstamped rows, or rebuilt twice since: a run
-- stopped between the two models), its first period's start.
changed_from as (

    select
        changed.org_id,
        cast(min(
            case
                when changed._source_synced_at is not null
                    and changed._previous_source_synced_at <= {{ periods_read_at }}
                    then changed._periods_changed_from
                else changed.started_at
            end
        ) as date) as first_date
    from {{ ref('int_drift__status_periods') }} as changed
    where changed._source_synced_at is null
        or changed._source_synced_at > {{ periods_read_at }}
    group by changed.org_id

),

-- Per org, the days this run rebuilds: [first_date, last_date]; first_date null: every day.
rebuild as (

    select
        orgs.org_id,
        case
            when built.org_id is null then null
            when coalesce(departed.departed_conversations, 0) <> coalesce(built.departed_conversations, 0)
                then built.first_built_date
            when changed_from.first_date is not null
                then least(changed_from.first_date, built.last_built_date)
            else built.last_built_date
        end as first_date,
        coalesce(greatest(horizons.last_date, built.last_built_date), horizons.last_date, built.last_built_date)
            as last_date
    from (select org_id from horizons union select org_id from built) as orgs
    left join horizons on orgs.org_id = horizons.org_id
    left join built on orgs.org_id = built.org_id
    left join departed on orgs.org_id = departed.org_id
    left join changed_from on orgs.org_id = changed_from.org_id

),

rebuilt_days as (

    {{ drift_expand_dates('rebuild', 'first_date', 'last_date', 'metric_date') }}
    where rebuild.first_date is not null

),
{%- endif %}

-- The day ends a period covers: the end of day D is in [started_at, ended_at) when D is on or
-- after the start's day and D + 1 day <= ended_at.
period_days as (

    select
        periods.org_id,
        periods.conversation_id,
        periods.inbox_id,
        periods.created_at,
        periods.status,
        {%- if incremental %}
        greatest(cast(periods.started_at as date), coalesce(rebuild.first_date, cast(periods.started_at as date)))
            as first_date,
        {%- else %}
        cast(periods.started_at as date) as first_date,
        {%- endif %}
        case
            when periods.ended_at is null then horizons.last_date
            else cast({{ dbt.dateadd('day', -1, 'periods.ended_at') }} as date)
        end as last_date
    from periods
    inner join horizons
        on periods.org_id = horizons.org_id
    {%- if incremental %}
    inner join rebuild
        on periods.org_id = rebuild.org_id
    {%- endif %}

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

),

-- Open conversations' ages ranked within their (day, inbox), for the percentiles: the groups
-- hold every open conversation of a day, too many at 10M for quantile_cont (cross_db.sql).
ranked as (

    select
        backlog.*,
        {{ drift_value_ranks("case when status = 'open' then age_seconds end", 'org_id, metric_date, inbox_id') }}
    from backlog

),

days as (

    select
        org_id,
        metric_date,
        inbox_id,
        cast(count(case when status = 'open' then 1 end) as bigint) as open_conversations,
        {{ drift_ranked_percentile("case when status = 'open' then age_seconds end", 0.5) }}
            as open_age_p50_seconds,
        {{ drift_ranked_percentile("case when status = 'open' then age_seconds end", 0.9) }}
            as open_age_p90_seconds,
        cast(count(case when status = 'pending' then 1 end) as bigint) as pending_conversations
    from ranked
    group by org_id, metric_date, inbox_id
    {%- if incremental %}

    union all

    -- one zero row per rebuilt day (removed by the post-hook): the day is replaced even when
    -- nothing is open on it any more
    select
        org_id,
        metric_date,
        cast(null as bigint) as inbox_id,
        cast(0 as bigint) as open_conversations,
        cast(null as {{ drift_type_double() }}) as open_age_p50_seconds,
        cast(null as {{ drift_type_double() }}) as open_age_p90_seconds,
        cast(0 as bigint) as pending_conversations
    from rebuilt_days
    {%- endif %}

)

select
    days.*,
    (select max(_source_synced_at) from {{ ref('int_drift__status_periods') }}) as _periods_synced_at,
    cast(coalesce(departed.departed_conversations, 0) as bigint) as _departed_conversations
from days
left join departed
    on days.org_id = departed.org_id
