{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- When each conversation was first closed, and how often it was reopened.
-- The earliest `closed` event known (webhook, poll, or Drift's own first close from the reports
-- endpoint); without one, a conversation that is closed now was closed at its updated_at (Drift
-- moves updatedAt on every status change, so that is the latest close).
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql),
-- read with their status history (macros/metrics/conversation_status_inputs.sql).
with {{ drift_conversation_status_inputs() }},

history_summary as (

    select
        org_id,
        conversation_id,
        min(case when status = 'closed' then changed_at end) as first_closed_event_at,
        count(case when is_reopen then 1 end) as reopen_count
    from status_history
    group by org_id, conversation_id

)

select
    conversations.org_id,
    conversations.conversation_id,
    history_summary.first_closed_event_at,
    case
        when history_summary.first_closed_event_at is not null
            then history_summary.first_closed_event_at
        when conversations.status = 'closed'
            then conversations.updated_at
    end as first_closed_at,
    case
        when history_summary.first_closed_event_at is not null then 'status_event'
        when conversations.status = 'closed' and conversations.updated_at is not null then 'updated_at'
    end as first_closed_at_source,
    coalesce(history_summary.reopen_count, 0) as reopen_count,
    conversations._source_synced_at
from conversations
left join history_summary
    on conversations.org_id = history_summary.org_id
    and conversations.conversation_id = history_summary.conversation_id
