{#-
  The (org_id, metric_date) days a daily aggregate must recompute on an incremental run: days
  holding a conversation that fct_conversations rebuilt since the aggregate (`this`) last read
  it (its max `_fct_refreshed_at`), plus days whose count in the
  aggregate (`built`) no longer matches the count now (`current_counts`): a conversation erased
  or moved to another day. Used by agg_daily_metrics and agg_agent_daily.
-#}
{% macro drift_changed_days(conversations, current_counts, built, count_column) %}
    select distinct {{ conversations }}.org_id, {{ conversations }}.metric_date
    from {{ conversations }}
    where {{ conversations }}._refreshed_at > (
        select coalesce(max(_fct_refreshed_at), cast('1900-01-01' as timestamp)) from {{ this }}
    )

    union

    select
        coalesce(built.org_id, current_counts.org_id) as org_id,
        coalesce(built.metric_date, current_counts.metric_date) as metric_date
    from {{ built }} as built
    full outer join {{ current_counts }} as current_counts
        on built.org_id = current_counts.org_id
        and built.metric_date = current_counts.metric_date
    where coalesce(built.{{ count_column }}, 0) <> coalesce(current_counts.{{ count_column }}, 0)
{% endmacro %}
