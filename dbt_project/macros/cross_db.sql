{#
  Small dispatched helpers so the same models build on DuckDB (default here) and Postgres.
  Each has a `duckdb__` implementation and a `default__` one written for Postgres.
#}

{# A double-precision float (dbt.type_float() is FLOAT4 on DuckDB: too coarse for seconds). #}
{% macro drift_type_double() -%}
    {{ return(adapter.dispatch('drift_type_double', 'drift_pipeline')()) }}
{%- endmacro %}
{% macro duckdb__drift_type_double() -%}double{%- endmacro %}
{% macro default__drift_type_double() -%}double precision{%- endmacro %}


{#
  Fractional seconds from `start_at` to `end_at` (negative when end is earlier).
  DuckDB: difference of integer microseconds, so no precision is lost to a double epoch
  (epoch() of a 2026 timestamp leaves ~0.2 us of float error).
#}
{% macro drift_seconds_between(start_at, end_at) -%}
    {{ return(adapter.dispatch('drift_seconds_between', 'drift_pipeline')(start_at, end_at)) }}
{%- endmacro %}
{% macro duckdb__drift_seconds_between(start_at, end_at) -%}
    (cast(epoch_us({{ end_at }}) - epoch_us({{ start_at }}) as double) / 1000000.0)
{%- endmacro %}
{% macro default__drift_seconds_between(start_at, end_at) -%}
    cast(extract(epoch from ({{ end_at }}) - ({{ start_at }})) as double precision)
{%- endmacro %}


{# Continuous percentile (linear interpolation) over the non-null values of the group. #}
{% macro drift_percentile_cont(expression, fraction) -%}
    {{ return(adapter.dispatch('drift_percentile_cont', 'drift_pipeline')(expression, fraction)) }}
{%- endmacro %}
{% macro duckdb__drift_percentile_cont(expression, fraction) -%}
    cast(quantile_cont({{ expression }}, {{ fraction }}) as double)
{%- endmacro %}
{% macro default__drift_percentile_cont(expression, fraction) -%}
    cast(percentile_cont({{ fraction }}) within group (order by {{ expression }}) as double precision)
{%- endmacro %}


{#-
  The continuous percentiles at each of `fractions` (a list of numbers), as an array of doubles
  in that order (1-based: `[1]` is the first): one aggregate, which holds the group's values
  once for all of them, where drift_percentile_cont per fraction holds them once per call
  (DuckDB's quantile_cont cannot spill them). The same values as drift_percentile_cont's.
-#}
{% macro drift_percentiles_cont(expression, fractions) -%}
    {{ return(adapter.dispatch('drift_percentiles_cont', 'drift_pipeline')(expression, fractions)) }}
{%- endmacro %}
{% macro duckdb__drift_percentiles_cont(expression, fractions) -%}
    cast(quantile_cont({{ expression }}, [{{ fractions | join(', ') }}]) as double[])
{%- endmacro %}
{% macro default__drift_percentiles_cont(expression, fractions) -%}
    cast(percentile_cont(array[{{ fractions | join(', ') }}]) within group (order by {{ expression }})
        as double precision[])
{%- endmacro %}


{#-
  The same continuous percentile, from values ranked beforehand: for groups too large for
  DuckDB's quantile_cont, which holds every value of a group in memory and cannot spill (the
  backlog's day ends and the daily reply times ran out of memory at 10M conversations under
  2GB; a window's sort spills). The rows carry `value_rank` (row_number() in the group, by
  `value`, 1-based) and `value_count` (the group's non-null values), from `drift_value_ranks`,
  partitioned as the aggregate groups. Interpolates as quantile_cont and
  Postgres's percentile_cont do: position (count - 1) * fraction, in double precision.
-#}
{% macro drift_value_ranks(value, partition_by) -%}
    {#- the same partition and order for both, so one sort serves them. Nulls sort last, so the
        non-null values rank 1..count whatever nulls the group has (a null's rank is null, and
        no percentile reads its count); a partition of their own made the sort of
        agg_daily_metrics' replies 20-30% slower. -#}
    {%- set window = 'partition by ' ~ partition_by ~ ' order by ' ~ value ~ ' nulls last' %}
    case when {{ value }} is not null then row_number() over ({{ window }}) end as value_rank,
    count({{ value }}) over ({{ window }} rows between unbounded preceding and unbounded following) as value_count
{%- endmacro %}
{% macro drift_ranked_percentile(value, fraction) -%}
    {%- set position = '(cast(value_count as ' ~ drift_type_double() ~ ') - 1) * ' ~ fraction -%}
    {%- set low = 'max(case when value_rank = floor(' ~ position ~ ') + 1 then ' ~ value ~ ' end)' -%}
    {%- set high = 'max(case when value_rank = ceil(' ~ position ~ ') + 1 then ' ~ value ~ ' end)' -%}
    cast({{ low }} + ({{ high }} - {{ low }})
        * max(case when value_rank is not null then {{ position }} - floor({{ position }}) end)
        as {{ drift_type_double() }})
{%- endmacro %}


{# Naive UTC timestamp -> naive wall-clock timestamp in `tz` (an IANA zone name). #}
{% macro drift_utc_to_local(timestamp_expr, tz) -%}
    {{ return(adapter.dispatch('drift_utc_to_local', 'drift_pipeline')(timestamp_expr, tz)) }}
{%- endmacro %}
{% macro duckdb__drift_utc_to_local(timestamp_expr, tz) -%}
    timezone('{{ tz }}', timezone('UTC', {{ timestamp_expr }}))
{%- endmacro %}
{% macro default__drift_utc_to_local(timestamp_expr, tz) -%}
    (({{ timestamp_expr }}) at time zone 'UTC') at time zone '{{ tz }}'
{%- endmacro %}


{# Naive wall-clock timestamp in `tz` -> naive UTC timestamp (DST resolved by the zone rules). #}
{% macro drift_local_to_utc(timestamp_expr, tz) -%}
    {{ return(adapter.dispatch('drift_local_to_utc', 'drift_pipeline')(timestamp_expr, tz)) }}
{%- endmacro %}
{% macro duckdb__drift_local_to_utc(timestamp_expr, tz) -%}
    timezone('UTC', timezone('{{ tz }}', {{ timestamp_expr }}))
{%- endmacro %}
{% macro default__drift_local_to_utc(timestamp_expr, tz) -%}
    (({{ timestamp_expr }}) at time zone '{{ tz }}') at time zone 'UTC'
{%- endmacro %}


{#
  `select <relation>.*, <date> as <column>` with one row per calendar date from
  `start_date_column` to `end_date_column` (inclusive) of each row of `relation`.
#}
{% macro drift_expand_dates(relation, start_date_column, end_date_column, column) -%}
    {{ return(adapter.dispatch('drift_expand_dates', 'drift_pipeline')(relation, start_date_column, end_date_column, column)) }}
{%- endmacro %}
{% macro duckdb__drift_expand_dates(relation, start_date_column, end_date_column, column) -%}
    select
        {{ relation }}.*,
        cast(unnest(generate_series(
            cast({{ start_date_column }} as timestamp),
            cast({{ end_date_column }} as timestamp),
            interval 1 day
        )) as date) as {{ column }}
    from {{ relation }}
{%- endmacro %}
{% macro default__drift_expand_dates(relation, start_date_column, end_date_column, column) -%}
    select
        {{ relation }}.*,
        cast(expanded_dates.expanded_date as date) as {{ column }}
    from {{ relation }}
    cross join lateral generate_series(
        cast({{ relation }}.{{ start_date_column }} as timestamp),
        cast({{ relation }}.{{ end_date_column }} as timestamp),
        interval '1 day'
    ) as expanded_dates(expanded_date)
{%- endmacro %}


{# The run's start (UTC) as a TIMESTAMP literal: the watermark stamped on rebuilt rows. #}
{% macro drift_run_started_at() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}


{# An always-false select with typed columns, to close a `union all` chain built in Jinja. #}
{% macro drift_empty_row(columns) -%}
    select {% for name, sql_type in columns -%}
        cast(null as {{ sql_type }}) as {{ name }}{{ ", " if not loop.last }}
    {%- endfor %} where 1 = 0
{%- endmacro %}


{# `timestamp_expr` plus a fractional number of seconds, kept to the microsecond. #}
{% macro drift_add_seconds(timestamp_expr, seconds_expr) -%}
    {{ return(adapter.dispatch('drift_add_seconds', 'drift_pipeline')(timestamp_expr, seconds_expr)) }}
{%- endmacro %}
{% macro duckdb__drift_add_seconds(timestamp_expr, seconds_expr) -%}
    (({{ timestamp_expr }}) + to_microseconds(cast(round(({{ seconds_expr }}) * 1000000) as bigint)))
{%- endmacro %}
{% macro default__drift_add_seconds(timestamp_expr, seconds_expr) -%}
    (({{ timestamp_expr }}) + make_interval(secs => round(cast(({{ seconds_expr }}) as numeric), 6)))
{%- endmacro %}


{#-
  The statement a model runs after its transaction so the models after it find the memory its
  deletes held: DuckDB keeps a table's deleted rows in memory (about 16 KB per 2,048-row vector
  holding one) until a checkpoint writes them, and checkpoints by itself only once the WAL
  reaches 16 MB, which deletes alone hardly do. An incremental run deletes the rows of the
  conversations it rebuilds, spread over whole tables: at 10M conversations the webhook
  refresh's intermediate models left 1.2 GB of the 2 GB limit held so (for 3,600 changed
  conversations), and agg_agent_daily and agg_daily_metrics after them ran out of memory.
  DuckDB: `checkpoint` after an incremental model; Postgres keeps deleted rows on disk: nothing.
-#}
{% macro drift_checkpoint() -%}
    {{ return(adapter.dispatch('drift_checkpoint', 'drift_pipeline')()) }}
{%- endmacro %}
{% macro duckdb__drift_checkpoint() -%}
    {%- if model.config.materialized == 'incremental' %}checkpoint{% endif -%}
{%- endmacro %}
{% macro default__drift_checkpoint() -%}{%- endmacro %}
