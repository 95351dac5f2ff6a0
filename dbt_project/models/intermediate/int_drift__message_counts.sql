{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- Chat message counts per conversation, by author class.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

)

select
    chat_messages.org_id,
    chat_messages.conversation_id,
    count(*) as message_count,
    count(case when chat_messages.author_class = 'contact' then 1 end) as contact_message_count,
    count(case when chat_messages.author_class = 'agent' then 1 end) as agent_message_count,
    count(case when chat_messages.author_class = 'bot' then 1 end) as bot_message_count,
    max(rebuild.source_synced_at) as _source_synced_at
from {{ ref('int_drift__chat_messages') }} as chat_messages
inner join rebuild
    on chat_messages.org_id = rebuild.org_id
    and chat_messages.conversation_id = rebuild.conversation_id
group by chat_messages.org_id, chat_messages.conversation_id
