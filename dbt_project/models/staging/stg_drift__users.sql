select
    cast(org_id as bigint) as org_id,
    cast(user_id as bigint) as user_id,
    cast(name as varchar) as user_name,
    cast(alias as varchar) as user_alias,
    cast(role as varchar) as role,
    cast(availability as varchar) as availability,
    cast(time_zone as varchar) as time_zone,
    cast(is_bot as boolean) as is_bot,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'users') }}
