{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- First contact message and the first agent reply at or after it, per conversation.
-- Bots never count as a response; agent messages sent before the contact first spoke
-- (outbound openers) are not a response to anything.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

chat_messages as (

    select chat_messages.*
    from {{ ref('int_drift__chat_messages') }} as chat_messages
    inner join rebuild
        on chat_messages.org_id = rebuild.org_id
        and chat_messages.conversation_id = rebuild.conversation_id

),

conversations as (

    select distinct chat_messages.org_id, chat_messages.conversation_id, rebuild.source_synced_at
    from chat_messages
    inner join rebuild
        on chat_messages.org_id = rebuild.org_id
        and chat_messages.conversation_id = rebuild.conversation_id

),

first_contact_messages as (

    select
        org_id,
        conversation_id,
        min(created_at) as first_contact_message_at
    from chat_messages
    where author_class = 'contact'
    group by org_id, conversation_id

),

ranked_agent_replies as (

    select
        chat_messages.org_id,
        chat_messages.conversation_id,
        chat_messages.created_at,
        chat_messages.author_id,
        row_number() over (
            partition by chat_messages.org_id, chat_messages.conversation_id
            order by chat_messages.created_at, chat_messages.message_id
        ) as reply_rank
    from chat_messages
    inner join first_contact_messages
        on chat_messages.org_id = first_contact_messages.org_id
        and chat_messages.conversation_id = first_contact_messages.conversation_id
    where chat_messages.author_class = 'agent'
        and chat_messages.created_at >= first_contact_messages.first_contact_message_at

)

select
    conversations.org_id,
    conversations.conversation_id,
    first_contact_messages.first_contact_message_at,
    ranked_agent_replies.created_at as first_agent_message_at,
    ranked_agent_replies.author_id as first_responder_user_id,
    {{ drift_seconds_between(
        'first_contact_messages.first_contact_message_at',
        'ranked_agent_replies.created_at'
    ) }} as first_response_seconds,
    conversations.source_synced_at as _source_synced_at
from conversations
left join first_contact_messages
    on conversations.org_id = first_contact_messages.org_id
    and conversations.conversation_id = first_contact_messages.conversation_id
left join ranked_agent_replies
    on conversations.org_id = ranked_agent_replies.org_id
    and conversations.conversation_id = ranked_agent_replies.conversation_id
    and ranked_agent_replies.reply_rank = 1
