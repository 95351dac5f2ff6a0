select
    cast(org_id as bigint) as org_id,
    cast(playbook_id as bigint) as playbook_id,
    cast(goal_id as varchar) as goal_id,
    cast(message as varchar) as goal_message,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'playbook_goals_defined') }}
