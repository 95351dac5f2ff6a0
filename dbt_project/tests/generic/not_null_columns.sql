{#
  None of `column_names` holds a null: dbt's not_null for several columns of one model in one
  test and one scan. A dbt node costs ~0.1 s of dbt's own work whatever the data (compile,
  the test materialization, its bookkeeping), and 66 per-column not_null tests were half the
  nightly build's nodes (DECISIONLOG "Tests on what changed"). A failure returns one row per
  column that has nulls, naming it and counting them; the test's failures are the null values
  (fail_calc), as the per-column tests' failures added up.
#}
{% test not_null_columns(model, column_names) %}
    {{ config(fail_calc='coalesce(sum(null_rows), 0)') }}
    with null_counts as (
        select
        {%- for column in column_names %}
            count(*) filter (where {{ column }} is null) as nulls_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
        from {{ model }}
    )
    {%- for column in column_names %}
    select '{{ column }}' as column_name, nulls_{{ loop.index }} as null_rows
    from null_counts
    where nulls_{{ loop.index }} > 0
    {{ "union all" if not loop.last }}
    {%- endfor %}
{% endtest %}
