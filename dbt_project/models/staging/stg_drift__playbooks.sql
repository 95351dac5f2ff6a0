select
    cast(org_id as bigint) as org_id,
    cast(playbook_id as bigint) as playbook_id,
    cast(name as varchar) as playbook_name,
    cast(report_type as varchar) as report_type,
    cast(interaction_id as bigint) as interaction_id,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at,
    cast(first_seen_at as timestamp) as first_seen_at,
    cast(last_listed_at as timestamp) as last_listed_at,
    cast(currently_listed as boolean) as currently_listed,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'playbooks') }}
