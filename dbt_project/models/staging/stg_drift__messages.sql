-- The HTML body is left behind on purpose: no model needs it, and marts must not carry it.
select
    cast(org_id as bigint) as org_id,
    cast(conversation_id as bigint) as conversation_id,
    cast(message_id as bigint) as message_id,
    cast(created_at as timestamp) as created_at,
    cast(message_type as varchar) as message_type,
    cast(author_type as varchar) as author_type,
    cast(author_id as bigint) as author_id,
    cast(is_bot as boolean) as is_bot,
    cast(edited_message_id as bigint) as edited_message_id,
    cast(edit_type as varchar) as edit_type,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'messages') }}
