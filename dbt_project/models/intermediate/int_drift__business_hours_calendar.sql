{{ config(materialized='table') }}
-- Every open period of the business-hours schedule (vars business_hours_timezone,
-- business_hours, business_holidays) as UTC instants, one row per open local day, from the day
-- before the earliest chat message to var business_hours_calendar_days_ahead (366) days past
-- the newest: reply times are measured inside that span, and a business-hours SLA target is
-- reached inside it. It depends on the data only, not on the day it runs, so a rebuild gives
-- the same rows. Each local day's opening and closing are built as local wall-clock times
-- and converted with the zone's rules for that day, so a DST change moves them by the right
-- hour (drift_open_periods). The one calendar of every business-hours measure (first response,
-- reply times, SLAs). A small table, rebuilt whole
-- on every run (a few thousand rows for a decade).
{%- set days_ahead = var('business_hours_calendar_days_ahead', 366) | int %}

with schedule as (

    {{ drift_business_hours_schedule_sql() }}

),

holidays as (

    {{ drift_business_holidays_sql() }}

),

span as (

    select
        {{ dbt.dateadd('day', -1, 'cast(min(created_at) as date)') }} as first_date,
        {{ dbt.dateadd('day', days_ahead, 'cast(max(created_at) as date)') }} as last_date
    from {{ ref('int_drift__chat_messages') }}
    having count(*) > 0

),

calendar as (

    {{ drift_expand_dates('span', 'first_date', 'last_date', 'local_date') }}

),

open_periods as (

    {{ drift_open_periods('calendar') }}

)

-- previous_closes_at and business_seconds_before turn the calendar into a clock of business
-- time: an instant t falls in exactly one [previous_closes_at, closes_at), and its business
-- position is business_seconds_before plus its seconds past opens_at (SLA breach times).
select
    local_date,
    opens_at,
    closes_at,
    lag(closes_at) over (order by opens_at) as previous_closes_at,
    cast(coalesce(sum({{ drift_seconds_between('opens_at', 'closes_at') }}) over (
        order by opens_at rows between unbounded preceding and 1 preceding
    ), 0) as {{ drift_type_double() }}) as business_seconds_before,
    '{{ drift_business_hours_version() }}' as _business_hours_version
from open_periods
