-- The recorded status history, each event beside the one before it. An event reopens the
-- conversation when it is `open` and the previous event is `closed`. Events at the same
-- instant are ordered by status name, so the order is deterministic.
with status_events as (

    select * from {{ ref('stg_drift__status_events') }}

),

sequenced as (

    select
        org_id,
        conversation_id,
        status,
        changed_at,
        event_source,
        recorded_at,
        row_number() over (
            partition by org_id, conversation_id
            order by changed_at, status
        ) as event_sequence,
        lag(status) over (
            partition by org_id, conversation_id
            order by changed_at, status
        ) as previous_status
    from status_events

)

select
    org_id,
    conversation_id,
    event_sequence,
    status,
    previous_status,
    changed_at,
    event_source,
    recorded_at,
    coalesce(status = 'open' and previous_status = 'closed', false) as is_reopen
from sequenced
