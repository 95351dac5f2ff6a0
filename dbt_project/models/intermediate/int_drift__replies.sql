{{ config(pre_hook="{{ drift_clear_conversations_to_rebuild() }}") }}
-- One row per contact turn: the wait that begins at a contact chat message with no contact
-- message since the previous agent chat message (or since the start), and the reply that ends
-- it, the first agent chat message after it. Bots, notes and deleted messages never end a wait
-- (int_drift__chat_messages already dropped all but chat, and bots are left out here).
-- Messages at the same instant are ordered by message id. The last turn may be unanswered
-- (replied_at null): it is a wait, not a reply, but SLAs need it.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql).
with rebuild as (

    {{ drift_conversations_to_rebuild() }}

),

turn_messages as (

    select
        chat_messages.org_id,
        chat_messages.conversation_id,
        chat_messages.message_id,
        chat_messages.created_at,
        chat_messages.author_class,
        chat_messages.author_id,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__chat_messages') }} as chat_messages
    inner join rebuild
        on chat_messages.org_id = rebuild.org_id
        and chat_messages.conversation_id = rebuild.conversation_id
    where chat_messages.author_class in ('contact', 'agent')

),

-- How many agent messages came before each message: contact messages with the same count wait
-- for the same reply, and the agent message whose count equals theirs is that reply.
sequenced as (

    select
        turn_messages.*,
        sum(case when author_class = 'agent' then 1 else 0 end) over (
            partition by org_id, conversation_id
            order by created_at, message_id
            rows between unbounded preceding and current row
        ) - case when author_class = 'agent' then 1 else 0 end as agent_messages_before
    from turn_messages

),

waits as (

    select
        org_id,
        conversation_id,
        agent_messages_before,
        min(created_at) as waiting_since_at,
        max(_source_synced_at) as _source_synced_at
    from sequenced
    where author_class = 'contact'
    group by org_id, conversation_id, agent_messages_before

),

agent_messages as (

    select org_id, conversation_id, agent_messages_before, message_id, created_at, author_id
    from sequenced
    where author_class = 'agent'

),

turns as (

    select
        waits.org_id,
        waits.conversation_id,
        row_number() over (
            partition by waits.org_id, waits.conversation_id
            order by waits.agent_messages_before
        ) as turn_number,
        waits.waiting_since_at,
        agent_messages.message_id as reply_message_id,
        agent_messages.created_at as replied_at,
        agent_messages.author_id as responding_user_id,
        waits._source_synced_at
    from waits
    left join agent_messages
        on waits.org_id = agent_messages.org_id
        and waits.conversation_id = agent_messages.conversation_id
        and waits.agent_messages_before = agent_messages.agent_messages_before

)

select
    org_id,
    conversation_id,
    turn_number,
    waiting_since_at,
    replied_at,
    reply_message_id,
    responding_user_id,
    replied_at is not null as is_replied,
    {{ drift_seconds_between('waiting_since_at', 'replied_at') }} as reply_seconds,
    _source_synced_at
from turns
