-- Chat message counts per conversation, by author class.
select
    org_id,
    conversation_id,
    count(*) as message_count,
    count(case when author_class = 'contact' then 1 end) as contact_message_count,
    count(case when author_class = 'agent' then 1 end) as agent_message_count,
    count(case when author_class = 'bot' then 1 end) as bot_message_count
from {{ ref('int_drift__chat_messages') }}
group by org_id, conversation_id
