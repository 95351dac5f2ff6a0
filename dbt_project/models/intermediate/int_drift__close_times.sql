-- When each conversation was first closed, and how often it was reopened.
-- Without a recorded `closed` event, a conversation that is closed now was closed at its
-- updated_at (Drift moves updatedAt on every status change, so that is the latest close).
with conversations as (

    select * from {{ ref('stg_drift__conversations') }}

),

status_history as (

    select * from {{ ref('int_drift__status_history') }}

),

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
    coalesce(history_summary.reopen_count, 0) as reopen_count
from conversations
left join history_summary
    on conversations.org_id = history_summary.org_id
    and conversations.conversation_id = history_summary.conversation_id
