{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- Whether a bot took part, and whether an agent took over after it: a handoff needs an agent
-- chat message strictly after the earliest bot chat message (an agent who spoke before the
-- bot did not take over from it).
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

chat_messages as (

    -- chat_messages carries its own _source_synced_at (the watermark it was rebuilt from): a
    -- second column of that name is ambiguous in Postgres.
    select chat_messages.*
    from {{ ref('int_drift__chat_messages') }} as chat_messages
    inner join rebuild
        on chat_messages.org_id = rebuild.org_id
        and chat_messages.conversation_id = rebuild.conversation_id

),

first_bot_messages as (

    select
        org_id,
        conversation_id,
        min(created_at) as first_bot_message_at
    from chat_messages
    where author_class = 'bot'
    group by org_id, conversation_id

),

handoffs as (

    select
        chat_messages.org_id,
        chat_messages.conversation_id,
        min(first_bot_messages.first_bot_message_at) as first_bot_message_at,
        min(
            case
                when chat_messages.author_class = 'agent'
                    and chat_messages.created_at > first_bot_messages.first_bot_message_at
                    then chat_messages.created_at
            end
        ) as first_agent_after_bot_at,
        max(chat_messages._source_synced_at) as _source_synced_at
    from chat_messages
    left join first_bot_messages
        on chat_messages.org_id = first_bot_messages.org_id
        and chat_messages.conversation_id = first_bot_messages.conversation_id
    group by chat_messages.org_id, chat_messages.conversation_id

)

select
    org_id,
    conversation_id,
    first_bot_message_at is not null as has_bot,
    first_bot_message_at,
    first_agent_after_bot_at,
    first_agent_after_bot_at is not null as handed_off,
    _source_synced_at
from handoffs
