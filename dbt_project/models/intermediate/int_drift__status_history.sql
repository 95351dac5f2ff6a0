{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- The recorded status history, each event beside the one before it. An event reopens the
-- conversation when it is `open` and the previous event is `closed`. Events at the same
-- instant are ordered by status name, so the order is deterministic.
-- Incremental: the events of the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

status_events as (

    select status_events.*, rebuild.source_synced_at as _source_synced_at
    from {{ ref('stg_drift__status_events') }} as status_events
    inner join rebuild
        on status_events.org_id = rebuild.org_id
        and status_events.conversation_id = rebuild.conversation_id

),

sequenced as (

    select
        org_id,
        conversation_id,
        status,
        changed_at,
        event_source,
        recorded_at,
        _source_synced_at,
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
    coalesce(status = 'open' and previous_status = 'closed', false) as is_reopen,
    _source_synced_at
from sequenced
