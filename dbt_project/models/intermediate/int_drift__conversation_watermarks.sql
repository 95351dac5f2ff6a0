-- The latest load time of everything a conversation's metrics read (its row, its messages, its
-- status events). Incremental marts rebuild the conversations whose watermark moved.
-- SQL: macro drift_conversation_watermarks_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_conversation_watermarks_sql(
    conversations=ref('stg_drift__conversations'),
    messages=ref('stg_drift__messages'),
    status_events=ref('stg_drift__status_events')
) }}
