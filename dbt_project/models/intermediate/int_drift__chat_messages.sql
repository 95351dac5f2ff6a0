-- Chat messages that count for metrics, each with its author class.
-- Notes, prompts, suggestions and the edits themselves are not chat; a chat message that an
-- `edit` with edit_type = 'delete' points at is gone (replace edits keep the message).
-- SQL: macro drift_chat_messages_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_chat_messages_sql(
    messages=ref('stg_drift__messages')
) }}
