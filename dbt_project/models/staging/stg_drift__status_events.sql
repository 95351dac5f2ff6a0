select
    cast(org_id as bigint) as org_id,
    cast(conversation_id as bigint) as conversation_id,
    cast(status as varchar) as status,
    cast(changed_at as timestamp) as changed_at,
    cast(source as varchar) as event_source,
    cast(recorded_at as timestamp) as recorded_at
from {{ source('drift', 'status_events') }}
