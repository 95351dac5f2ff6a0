select
    cast(org_id as bigint) as org_id,
    cast(slug as varchar) as slug,
    cast(updated_at as timestamp) as updated_at,
    cast(status as varchar) as status,
    cast(slot_start_at as timestamp) as slot_start_at,
    cast(source as varchar) as change_source,
    cast(recorded_at as timestamp) as recorded_at
from {{ source('drift', 'meeting_changes') }}
