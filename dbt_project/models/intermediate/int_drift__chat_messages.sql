{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- Chat messages that count for metrics, each with its author class.
-- Notes, prompts, suggestions and the edits themselves are not chat; a chat message that an
-- `edit` with edit_type = 'delete' points at is gone (replace edits keep the message).
-- Incremental: the messages of the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

messages as (

    select
        messages.*,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('stg_drift__messages') }} as messages
    inner join rebuild
        on messages.org_id = rebuild.org_id
        and messages.conversation_id = rebuild.conversation_id

),

deleted_messages as (

    select distinct
        org_id,
        conversation_id,
        edited_message_id as message_id
    from messages
    where message_type = 'edit'
        and edit_type = 'delete'
        and edited_message_id is not null

),

chat_messages as (

    select messages.*
    from messages
    where messages.message_type = 'chat'
        and not exists (
            select 1
            from deleted_messages
            where deleted_messages.org_id = messages.org_id
                and deleted_messages.conversation_id = messages.conversation_id
                and deleted_messages.message_id = messages.message_id
        )

)

select
    org_id,
    conversation_id,
    message_id,
    created_at,
    author_type,
    author_id,
    coalesce(is_bot, false) as is_bot,
    case
        when author_type = 'contact' then 'contact'
        when coalesce(is_bot, false) then 'bot'
        when author_type = 'user' then 'agent'
        else 'unknown'
    end as author_class,
    synced_at,
    _source_synced_at
from chat_messages
