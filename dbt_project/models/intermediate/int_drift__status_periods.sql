{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- Each conversation's status over time, as periods [started_at, ended_at) (ended_at null: still
-- in that status). A conversation is open from its created_at (Drift opens every conversation)
-- until its first recorded status event; then each recorded event (int_drift__status_history:
-- webhook, poll and report) starts a period. When the recorded history does not end in the
-- status the conversation has now (without events: open), the current status starts a last
-- period at updated_at (Drift moves updatedAt on every status change), the rule first_closed_at
-- falls back on. Periods of zero length (two changes at one instant) are dropped.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql),
-- read with their status history (macros/metrics/conversation_status_inputs.sql).
with {{ drift_conversation_status_inputs() }},

last_recorded as (

    select
        org_id,
        conversation_id,
        max(changed_at) as last_changed_at,
        max(event_sequence) as last_event_sequence
    from status_history
    group by org_id, conversation_id

),

changes as (

    -- the start: open at created_at, before any recorded event at the same instant
    select
        conversations.org_id,
        conversations.conversation_id,
        conversations.created_at as changed_at,
        0 as change_order,
        'open' as status
    from conversations
    where conversations.created_at is not null

    union all

    select
        org_id,
        conversation_id,
        changed_at,
        event_sequence as change_order,
        status
    from status_history

    union all

    -- the status now, when the recorded history ends in another one (or there is none)
    select
        conversations.org_id,
        conversations.conversation_id,
        -- never before the history it follows, nor before the conversation existed
        case
            when last_recorded.last_changed_at > conversations.updated_at
                and last_recorded.last_changed_at > coalesce(conversations.created_at, last_recorded.last_changed_at)
                then last_recorded.last_changed_at
            when conversations.created_at > conversations.updated_at then conversations.created_at
            else conversations.updated_at
        end as changed_at,
        coalesce(last_recorded.last_event_sequence, 0) + 1 as change_order,
        conversations.status
    from conversations
    left join last_recorded
        on conversations.org_id = last_recorded.org_id
        and conversations.conversation_id = last_recorded.conversation_id
    left join status_history as last_event
        on last_event.org_id = last_recorded.org_id
        and last_event.conversation_id = last_recorded.conversation_id
        and last_event.event_sequence = last_recorded.last_event_sequence
    where conversations.status is not null
        and conversations.updated_at is not null
        and coalesce(last_event.status, 'open') <> conversations.status

),

periods as (

    select
        org_id,
        conversation_id,
        status,
        changed_at as started_at,
        lead(changed_at) over (
            partition by org_id, conversation_id
            order by changed_at, change_order
        ) as ended_at
    from changes

)

select
    periods.org_id,
    periods.conversation_id,
    conversations.inbox_id,
    conversations.created_at,
    periods.status,
    periods.started_at,
    periods.ended_at,
    conversations._source_synced_at
from periods
inner join conversations
    on periods.org_id = conversations.org_id
    and periods.conversation_id = conversations.conversation_id
where periods.ended_at is null or periods.ended_at > periods.started_at
