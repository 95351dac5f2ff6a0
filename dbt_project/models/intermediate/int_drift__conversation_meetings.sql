{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- Per conversation named by a meeting: whether a meeting booked in it still stands (its latest
-- status is not cancelled) and when the first of those was booked. A meeting cancelled and
-- rebooked leaves the conversation booked through the new one; one whose meetings were all
-- cancelled is not booked.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql); a
-- meeting booked, cancelled or rebooked moves its conversation's watermark.
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

meetings as (

    select meetings.*, rebuild.source_synced_at
    from {{ ref('int_drift__meeting_latest') }} as meetings
    inner join rebuild
        on meetings.org_id = rebuild.org_id
        and meetings.conversation_id = rebuild.conversation_id

)

select
    org_id,
    conversation_id,
    cast(count(*) as bigint) as meeting_count,
    cast(count(case when not is_cancelled then 1 end) as bigint) as booked_meeting_count,
    count(case when not is_cancelled then 1 end) > 0 as meeting_booked,
    min(case when not is_cancelled then scheduled_at end) as first_meeting_scheduled_at,
    max(source_synced_at) as _source_synced_at
from meetings
group by org_id, conversation_id
