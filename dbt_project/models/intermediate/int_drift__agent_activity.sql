{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- How many agents took part in each conversation and how often the conversation passed from
-- one to another: distinct authors of agent chat messages, and consecutive agent chat messages
-- (by time, then message id; contact and bot messages between them do not matter) whose
-- authors differ. Conversations without agent chat messages have no row.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

agent_messages as (

    select
        chat_messages.org_id,
        chat_messages.conversation_id,
        chat_messages.author_id,
        lag(chat_messages.author_id) over (
            partition by chat_messages.org_id, chat_messages.conversation_id
            order by chat_messages.created_at, chat_messages.message_id
        ) as previous_author_id,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__chat_messages') }} as chat_messages
    inner join rebuild
        on chat_messages.org_id = rebuild.org_id
        and chat_messages.conversation_id = rebuild.conversation_id
    where chat_messages.author_class = 'agent'

)

select
    org_id,
    conversation_id,
    count(*) as agent_message_count,
    count(distinct author_id) as unique_agent_count,
    count(case when author_id <> previous_author_id then 1 end) as agent_switch_count,
    max(_source_synced_at) as _source_synced_at
from agent_messages
group by org_id, conversation_id
