{#
  The business-hours schedule, read from dbt vars (see dbt_project.yml):
    business_hours_timezone  IANA zone, e.g. "America/New_York"
    business_hours           {monday: ["09:00", "17:00"], ..., sunday: []}
    business_holidays        ["2026-12-25", ...] local dates closed all day
  Bad values fail compilation with a message that names the var.
#}


{% macro drift_business_hours_timezone() -%}
    {%- set tz = var('business_hours_timezone', 'America/New_York') -%}
    {%- if tz is not string or not modules.re.match('^[A-Za-z0-9_+/-]+$', tz) -%}
        {{ exceptions.raise_compiler_error("var business_hours_timezone must be an IANA zone name like 'America/New_York', got " ~ tz) }}
    {%- endif -%}
    {{ return(tz) }}
{%- endmacro %}


{# "HH:MM" -> minutes after local midnight (0..1440). #}
{% macro drift_minutes_of_day(value, day) -%}
    {%- set match = modules.re.match('^([0-9]{1,2}):([0-9]{2})$', value | string) -%}
    {%- if not match -%}
        {{ exceptions.raise_compiler_error("var business_hours." ~ day ~ ": expected \"HH:MM\", got " ~ value) }}
    {%- endif -%}
    {%- set minutes = (match.group(1) | int) * 60 + (match.group(2) | int) -%}
    {%- if minutes > 1440 or (match.group(2) | int) > 59 -%}
        {{ exceptions.raise_compiler_error("var business_hours." ~ day ~ ": " ~ value ~ " is not a time of day") }}
    {%- endif -%}
    {{ return(minutes) }}
{%- endmacro %}


{# [(iso_weekday, open_minute, close_minute)] for the open days of the schedule. #}
{% macro drift_business_hours_rows() -%}
    {%- set weekdays = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] -%}
    {%- set schedule = var('business_hours', {}) or {} -%}
    {%- if schedule is not mapping -%}
        {{ exceptions.raise_compiler_error("var business_hours must map weekday names to [open, close]") }}
    {%- endif -%}
    {%- for day in schedule -%}
        {%- if day | lower not in weekdays -%}
            {{ exceptions.raise_compiler_error("var business_hours: unknown weekday " ~ day) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set rows = [] -%}
    {%- for day in weekdays -%}
        {%- set hours = schedule.get(day) or schedule.get(day | capitalize) or [] -%}
        {%- if hours -%}
            {%- if hours is string or hours | length != 2 -%}
                {{ exceptions.raise_compiler_error("var business_hours." ~ day ~ ": expected [\"HH:MM\", \"HH:MM\"] or [], got " ~ hours) }}
            {%- endif -%}
            {%- set open_minute = drift_minutes_of_day(hours[0], day) -%}
            {%- set close_minute = drift_minutes_of_day(hours[1], day) -%}
            {%- if close_minute <= open_minute -%}
                {{ exceptions.raise_compiler_error("var business_hours." ~ day ~ ": close must be after open") }}
            {%- endif -%}
            {%- do rows.append((loop.index, open_minute, close_minute)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}


{% macro drift_business_holidays() -%}
    {%- set holidays = var('business_holidays', []) or [] -%}
    {%- if holidays is string or holidays is mapping -%}
        {{ exceptions.raise_compiler_error("var business_holidays must be a list of \"YYYY-MM-DD\" dates") }}
    {%- endif -%}
    {%- for day in holidays -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', day | string) -%}
            {{ exceptions.raise_compiler_error("var business_holidays: expected \"YYYY-MM-DD\", got " ~ day) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(holidays | map('string') | list) }}
{%- endmacro %}


{# SQL: one row per open weekday (iso_weekday 1 = Monday, open/close minutes after midnight). #}
{% macro drift_business_hours_schedule_sql() -%}
    {%- for iso_weekday, open_minute, close_minute in drift_business_hours_rows() %}
    select {{ iso_weekday }} as iso_weekday, {{ open_minute }} as open_minute, {{ close_minute }} as close_minute
    union all
    {%- endfor %}
    {{ drift_empty_row([('iso_weekday', 'integer'), ('open_minute', 'integer'), ('close_minute', 'integer')]) }}
{%- endmacro %}


{# SQL: one row per holiday (local date). #}
{% macro drift_business_holidays_sql() -%}
    {%- for day in drift_business_holidays() %}
    select cast('{{ day }}' as date) as holiday_date
    union all
    {%- endfor %}
    {{ drift_empty_row([('holiday_date', 'date')]) }}
{%- endmacro %}


{#
  A short fingerprint of the schedule. fct_conversations stores it on each row; an incremental
  run that sees a different one rebuilds every row, so a schedule change never leaves stale values.
#}
{% macro drift_business_hours_version() -%}
    {%- set payload = tojson({
        'timezone': drift_business_hours_timezone(),
        'hours': drift_business_hours_rows(),
        'holidays': drift_business_holidays() | sort,
    }) -%}
    {{ return(local_md5(payload)[:16]) }}
{%- endmacro %}


{#- SQL that is true when `this` (an incremental model carrying `_business_hours_version`) was
    built on another schedule than the configured one: it then rebuilds every conversation. -#}
{% macro drift_business_hours_changed() -%}
    {{ return(drift_version_changed('_business_hours_version', drift_business_hours_version())) }}
{%- endmacro %}


{#-
  The schedule's open periods of the local days in `calendar` (a relation with local_date), as
  UTC instants: each day's opening and closing built as local wall-clock times and converted
  with the zone's rules for that day, so a DST change moves them by the right hour; holidays
  and closed weekdays have none. Reads the `schedule` and `holidays` CTEs
  (drift_business_hours_schedule_sql, drift_business_holidays_sql).
-#}
{% macro drift_open_periods(calendar) -%}
    {%- set tz = drift_business_hours_timezone() %}
    select
        {{ calendar }}.local_date,
        {{ drift_local_to_utc(
            dbt.dateadd('minute', 'schedule.open_minute', 'cast(' ~ calendar ~ '.local_date as timestamp)'),
            tz
        ) }} as opens_at,
        {{ drift_local_to_utc(
            dbt.dateadd('minute', 'schedule.close_minute', 'cast(' ~ calendar ~ '.local_date as timestamp)'),
            tz
        ) }} as closes_at
    from {{ calendar }}
    inner join schedule
        on schedule.iso_weekday = cast(extract(isodow from {{ calendar }}.local_date) as integer)
    where not exists (
        select 1 from holidays where holidays.holiday_date = {{ calendar }}.local_date
    )
{%- endmacro %}


{#-
  Seconds of each range [start_column, end_column] of `ranges` that fall inside the open
  periods of `open_periods` (opens_at, closes_at), summed per `keys`: the ranges range-joined
  to the periods they overlap. Only ranges overlapping an open period get a row. Summed in
  whole microseconds: a sum of doubles depends on the order rows arrive in.
-#}
{% macro drift_business_seconds(ranges, start_column, end_column, keys, open_periods='open_periods') -%}
    select
        {%- for key in keys %}
        overlapping.{{ key }},
        {%- endfor %}
        cast(sum(cast(round({{ drift_seconds_between('overlapping.overlap_starts_at', 'overlapping.overlap_ends_at') }} * 1000000) as bigint))
            as {{ drift_type_double() }}) / 1000000.0 as seconds_in_hours
    from (
        select
            {%- for key in keys %}
            ranges.{{ key }},
            {%- endfor %}
            case
                when ranges.{{ start_column }} > periods.opens_at then ranges.{{ start_column }}
                else periods.opens_at
            end as overlap_starts_at,
            case
                when ranges.{{ end_column }} < periods.closes_at then ranges.{{ end_column }}
                else periods.closes_at
            end as overlap_ends_at
        from {{ ranges }} as ranges
        inner join {{ open_periods }} as periods
            on periods.opens_at < ranges.{{ end_column }}
            and periods.closes_at > ranges.{{ start_column }}
    ) as overlapping
    group by {% for key in keys %}overlapping.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
{%- endmacro %}
