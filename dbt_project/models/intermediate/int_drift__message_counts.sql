-- Chat message counts per conversation, by author class.
-- SQL: macro drift_message_counts_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_message_counts_sql(
    chat_messages=ref('int_drift__chat_messages')
) }}
