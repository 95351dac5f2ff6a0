select
    cast(org_id as bigint) as org_id,
    cast(conversation_id as bigint) as conversation_id,
    cast(status as varchar) as status,
    cast(contact_id as bigint) as contact_id,
    cast(inbox_id as bigint) as inbox_id,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(assignee_user_id as bigint) as assignee_user_id,
    participant_user_ids,
    tags,
    cast(related_playbook_id as bigint) as related_playbook_id,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'conversations') }}
