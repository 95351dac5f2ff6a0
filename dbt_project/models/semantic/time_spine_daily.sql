{#-
  One row per UTC day, the time spine MetricFlow joins time-based metrics to (dbt's `time_spine`
  config in _drift__semantic.yml). A fixed range rather than one read from the data: every
  conversation Drift can hold falls inside it, and the table never changes between builds.
-#}
select cast(spine.day_start as date) as date_day
from generate_series(
    cast('2000-01-01' as timestamp),
    cast('2099-12-31' as timestamp),
    interval '1 day'
) as spine(day_start)
