select
    cast(org_id as bigint) as org_id,
    cast(account_id as varchar) as account_id,
    cast(name as varchar) as account_name,
    cast(domain as varchar) as domain,
    cast(owner_user_id as bigint) as owner_user_id,
    cast(targeted as boolean) as targeted,
    cast(deleted as boolean) as deleted,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'accounts') }}
