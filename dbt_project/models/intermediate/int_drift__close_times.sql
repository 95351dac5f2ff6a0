-- When each conversation was first closed, and how often it was reopened.
-- Without a recorded `closed` event, a conversation that is closed now was closed at its
-- updated_at (Drift moves updatedAt on every status change, so that is the latest close).
-- SQL: macro drift_close_times_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_close_times_sql(
    conversations=ref('stg_drift__conversations'),
    status_history=ref('int_drift__status_history')
) }}
