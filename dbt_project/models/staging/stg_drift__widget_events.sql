select
    cast(org_id as bigint) as org_id,
    cast(event_id as varchar) as event_id,
    cast(event_type as varchar) as event_type,
    cast(conversation_id as bigint) as conversation_id,
    cast(occurred_at as timestamp) as occurred_at,
    cast(utm_source as varchar) as utm_source,
    cast(utm_medium as varchar) as utm_medium,
    cast(utm_campaign as varchar) as utm_campaign,
    cast(utm_term as varchar) as utm_term,
    cast(utm_content as varchar) as utm_content,
    cast(page_path as varchar) as page_path,
    cast(synced_at as timestamp) as synced_at
from {{ source('drift', 'widget_events') }}
