select
    cast(org_id as bigint) as org_id,
    cast(event_id as varchar) as event_id,
    cast(playbook_id as bigint) as playbook_id,
    cast(goal_id as varchar) as goal_id,
    cast(conversation_id as bigint) as conversation_id,
    cast(contact_id as bigint) as contact_id,
    cast(occurred_at as timestamp) as occurred_at,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'playbook_goals') }}
