-- First contact message and the first agent reply at or after it, per conversation.
-- Bots never count as a response; agent messages sent before the contact first spoke
-- (outbound openers) are not a response to anything.
-- SQL: macro drift_first_response_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_first_response_sql(
    chat_messages=ref('int_drift__chat_messages')
) }}
