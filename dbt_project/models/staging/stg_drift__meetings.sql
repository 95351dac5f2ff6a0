-- meeting_notes_hash is left behind: no model needs it (the notes themselves are never stored).
select
    cast(org_id as bigint) as org_id,
    cast(slug as varchar) as slug,
    cast(status as varchar) as status,
    cast(meeting_source as varchar) as meeting_source,
    cast(meeting_type as varchar) as meeting_type,
    cast(agent_user_id as bigint) as agent_user_id,
    cast(scheduler_contact_id as bigint) as scheduler_contact_id,
    cast(conversation_id as bigint) as conversation_id,
    cast(booked_by_user_id as bigint) as booked_by_user_id,
    cast(slot_start_at as timestamp) as slot_start_at,
    cast(slot_end_at as timestamp) as slot_end_at,
    cast(scheduled_at as timestamp) as scheduled_at,
    cast(updated_at as timestamp) as updated_at,
    cast(end_user_time_zone as varchar) as end_user_time_zone,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'meetings') }}
