-- Seconds of [first_contact_message_at, first_agent_message_at] that fall inside business hours.
-- Each local day's opening and closing are built as local wall-clock times and converted to UTC
-- with the zone's rules for that day, so a DST change moves them by the right hour. The open
-- periods are computed once per calendar day of the data's span (not per conversation), then
-- range-joined to the responses they overlap.
-- SQL: macro drift_business_hours_first_response_sql in macros/conversation_metrics.sql (fct_conversations'
-- incremental path runs it on just the conversations it rebuilds).
{{ drift_business_hours_first_response_sql(
    first_responses=ref('int_drift__first_response')
) }}
