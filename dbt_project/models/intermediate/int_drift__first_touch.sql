{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- First touch per conversation: the earliest widget event (by the browser's occurred_at, ties
-- by event id) and the UTM parameters and page path it carried. Later events never re-attribute
-- a conversation (DECISIONLOG.md, Attribution).
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql); a
-- widget event applied after its conversation was built moves that conversation's watermark.
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

ranked_events as (

    select
        widget_events.*,
        rebuild.source_synced_at,
        row_number() over (
            partition by widget_events.org_id, widget_events.conversation_id
            order by widget_events.occurred_at, widget_events.event_id
        ) as touch_rank
    from {{ ref('stg_drift__widget_events') }} as widget_events
    inner join rebuild
        on widget_events.org_id = rebuild.org_id
        and widget_events.conversation_id = rebuild.conversation_id

)

select
    org_id,
    conversation_id,
    event_id as first_touch_event_id,
    event_type as first_touch_event_type,
    occurred_at as first_touch_at,
    utm_source,
    utm_medium,
    utm_campaign,
    utm_term,
    utm_content,
    page_path as landing_page,
    source_synced_at as _source_synced_at
from ranked_events
where touch_rank = 1
