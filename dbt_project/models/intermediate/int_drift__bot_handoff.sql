-- Whether a bot took part, and whether an agent took over after it: a handoff needs an agent
-- chat message strictly after the earliest bot chat message (an agent who spoke before the
-- bot did not take over from it).
-- SQL: macro drift_bot_handoff_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_bot_handoff_sql(
    chat_messages=ref('int_drift__chat_messages')
) }}
