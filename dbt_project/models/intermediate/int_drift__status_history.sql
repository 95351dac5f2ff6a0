-- The recorded status history, each event beside the one before it. An event reopens the
-- conversation when it is `open` and the previous event is `closed`. Events at the same
-- instant are ordered by status name, so the order is deterministic.
-- SQL: macro drift_status_history_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_status_history_sql(
    status_events=ref('stg_drift__status_events')
) }}
