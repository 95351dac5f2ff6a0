{{ config(materialized='view') }}
{#-
  One row per reply (an answered contact turn of int_drift__replies) of the conversations in
  marts.fct_conversations, beside its conversation's created_at: MetricFlow's reply-level
  semantic model needs its time dimension in its own table, and a reply lands in the period its
  conversation started, as in marts.agg_daily_metrics (DECISIONLOG "Semantic layer").
  A view: nothing to build or refresh, and it reads the tables as they are after each run.
-#}
select
    replies.org_id,
    replies.conversation_id,
    replies.turn_number,
    conversations.created_at as conversation_created_at,
    replies.replied_at,
    replies.responding_user_id,
    replies.reply_seconds
from {{ ref('int_drift__replies') }} as replies
inner join {{ ref('fct_conversations') }} as conversations
    on replies.org_id = conversations.org_id
    and replies.conversation_id = conversations.conversation_id
where replies.reply_seconds is not null
