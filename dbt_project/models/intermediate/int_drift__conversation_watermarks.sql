-- The latest load time of everything a conversation's metrics read (its row, its messages, its
-- status events). Incremental marts rebuild the conversations whose watermark moved.
with conversations as (

    select org_id, conversation_id, synced_at, case when synced_at is null then 1 else 0 end as unstamped
    from {{ ref('stg_drift__conversations') }}

),

messages as (

    select
        org_id,
        conversation_id,
        max(synced_at) as synced_at,
        count(*) - count(synced_at) as unstamped
    from {{ ref('stg_drift__messages') }}
    group by org_id, conversation_id

),

status_events as (

    select
        org_id,
        conversation_id,
        max(recorded_at) as synced_at,
        count(*) - count(recorded_at) as unstamped
    from {{ ref('stg_drift__status_events') }}
    group by org_id, conversation_id

),

loads as (

    select * from conversations
    union all
    select * from messages
    union all
    select * from status_events

)

select
    org_id,
    conversation_id,
    max(synced_at) as source_synced_at,
    sum(unstamped) > 0 as has_unstamped_rows
from loads
group by org_id, conversation_id
