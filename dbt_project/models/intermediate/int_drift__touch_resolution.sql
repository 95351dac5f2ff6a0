{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- dbt_zendesk's one/two/multi-touch resolution, on Drift: how many agent chat messages a
-- closed conversation took. Only conversations with a first close have a class: an open one
-- may still be touched again. 'none' is a close without any agent chat message (a bot or the
-- contact ended it).
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

close_times as (

    select close_times.*
    from {{ ref('int_drift__close_times') }} as close_times
    inner join rebuild
        on close_times.org_id = rebuild.org_id
        and close_times.conversation_id = rebuild.conversation_id

),

message_counts as (

    select message_counts.*
    from {{ ref('int_drift__message_counts') }} as message_counts
    inner join rebuild
        on message_counts.org_id = rebuild.org_id
        and message_counts.conversation_id = rebuild.conversation_id

),

touches as (

    select
        close_times.org_id,
        close_times.conversation_id,
        close_times.first_closed_at,
        coalesce(message_counts.agent_message_count, 0) as agent_message_count,
        close_times._source_synced_at
    from close_times
    left join message_counts
        on close_times.org_id = message_counts.org_id
        and close_times.conversation_id = message_counts.conversation_id

)

select
    org_id,
    conversation_id,
    first_closed_at,
    agent_message_count,
    case
        when first_closed_at is null then null
        when agent_message_count = 0 then 'none'
        when agent_message_count = 1 then 'one'
        when agent_message_count = 2 then 'two'
        else 'multi'
    end as touch_class,
    _source_synced_at
from touches
