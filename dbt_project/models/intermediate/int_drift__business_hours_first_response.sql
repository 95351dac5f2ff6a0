{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild(drift_business_hours_changed()) }}") }}
-- Seconds of [first_contact_message_at, first_agent_message_at] that fall inside business hours.
-- Each local day's opening and closing are built as local wall-clock times and converted to UTC
-- with the zone's rules for that day, so a DST change moves them by the right hour. The open
-- periods are computed once per calendar day of the data's span (not per conversation), then
-- range-joined to the responses they overlap.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql), all
-- of them when the schedule changed.
{%- set tz = drift_business_hours_timezone() %}
{%- set version = drift_business_hours_version() %}

with rebuild as (

    {{ drift_conversations_to_rebuild(drift_business_hours_changed()) }}

),

responses as (

    select
        first_responses.org_id,
        first_responses.conversation_id,
        first_responses.first_contact_message_at as response_started_at,
        first_responses.first_agent_message_at as response_ended_at,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__first_response') }} as first_responses
    inner join rebuild
        on first_responses.org_id = rebuild.org_id
        and first_responses.conversation_id = rebuild.conversation_id
    where first_responses.first_contact_message_at is not null
        and first_responses.first_agent_message_at is not null

),

schedule as (

    {{ drift_business_hours_schedule_sql() }}

),

holidays as (

    {{ drift_business_holidays_sql() }}

),

-- UTC dates, widened by a day on each side: every local day the responses touch is inside.
span as (

    select
        {{ dbt.dateadd('day', -1, 'cast(min(response_started_at) as date)') }} as first_date,
        {{ dbt.dateadd('day', 1, 'cast(max(response_ended_at) as date)') }} as last_date
    from responses
    having count(*) > 0

),

calendar as (

    {{ drift_expand_dates('span', 'first_date', 'last_date', 'local_date') }}

),

open_periods as (

    select
        {{ drift_local_to_utc(
            dbt.dateadd('minute', 'schedule.open_minute', 'cast(calendar.local_date as timestamp)'),
            tz
        ) }} as opens_at,
        {{ drift_local_to_utc(
            dbt.dateadd('minute', 'schedule.close_minute', 'cast(calendar.local_date as timestamp)'),
            tz
        ) }} as closes_at
    from calendar
    inner join schedule
        on schedule.iso_weekday = cast(extract(isodow from calendar.local_date) as integer)
    where not exists (
        select 1 from holidays where holidays.holiday_date = calendar.local_date
    )

),

overlapping_periods as (

    select
        responses.org_id,
        responses.conversation_id,
        case
            when responses.response_started_at > open_periods.opens_at
                then responses.response_started_at
            else open_periods.opens_at
        end as overlap_starts_at,
        case
            when responses.response_ended_at < open_periods.closes_at
                then responses.response_ended_at
            else open_periods.closes_at
        end as overlap_ends_at
    from responses
    inner join open_periods
        on open_periods.opens_at < responses.response_ended_at
        and open_periods.closes_at > responses.response_started_at

),

business_seconds as (

    select
        org_id,
        conversation_id,
        -- whole microseconds: a sum of doubles depends on the order rows arrive in
        cast(sum(cast(round({{ drift_seconds_between('overlap_starts_at', 'overlap_ends_at') }} * 1000000) as bigint))
            as {{ drift_type_double() }}) / 1000000.0 as seconds_in_hours
    from overlapping_periods
    group by org_id, conversation_id

)

select
    responses.org_id,
    responses.conversation_id,
    cast(coalesce(business_seconds.seconds_in_hours, 0) as {{ drift_type_double() }})
        as first_response_business_seconds,
    responses._source_synced_at,
    '{{ version }}' as _business_hours_version
from responses
left join business_seconds
    on responses.org_id = business_seconds.org_id
    and responses.conversation_id = business_seconds.conversation_id
