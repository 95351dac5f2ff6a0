{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'metric_date'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook=["delete from {{ this }} where conversations_first_responded = 0"]
    )
}}
{#-
  Rows are (org_id, metric_date, user_id); incremental runs replace whole days (the delete+insert
  key is the day, so a user who stopped being a first responder on a rebuilt day disappears).
  Days rebuilt: those holding a conversation fct_conversations rebuilt since this table last read
  it, those whose responded-conversation count no longer matches (erasure, moved day), and those
  showing an agent name that raw.users no longer has. A day left without first responders is
  written as a zero row and removed by the post-hook. Together: incremental equals full refresh.
-#}

with conversations as (

    select
        *,
        cast(created_at as date) as metric_date
    from {{ ref('fct_conversations') }}

),

first_responses as (

    select *
    from conversations
    where first_responder_user_id is not null

),

users as (

    select * from {{ ref('stg_drift__users') }}

),

{% if is_incremental() %}
current_counts as (

    select org_id, metric_date, count(*) as conversations_first_responded
    from first_responses
    group by org_id, metric_date

),

built_counts as (

    select org_id, metric_date, sum(conversations_first_responded) as conversations_first_responded
    from {{ this }}
    group by org_id, metric_date

),

days_to_build as (

    {{ drift_changed_days('conversations', 'current_counts', 'built_counts', 'conversations_first_responded') }}

    {%- if drift_columns_missing(['reply_time_p50_seconds', 'one_touch_conversations']) == 'true' %}
    -- built before the reply columns existed: every day again (macros/metrics/columns_missing.sql)
    union

    select distinct org_id, metric_date
    from first_responses
    {%- endif %}

    union

    select built.org_id, built.metric_date
    from {{ this }} as built
    left join users
        on built.org_id = users.org_id
        and built.user_id = users.user_id
    where built.agent_name is distinct from users.user_name

),
{% else %}
days_to_build as (

    select distinct org_id, metric_date
    from first_responses

),
{% endif %}

-- Every reply in the conversations the agent answered first (the conversation's owner, as
-- dbt_zendesk attributes ticket metrics to the assignee), whoever wrote it.
replies as (

    select
        first_responses.org_id,
        first_responses.metric_date,
        first_responses.first_responder_user_id as user_id,
        replies.reply_seconds
    from {{ ref('int_drift__replies') }} as replies
    inner join first_responses
        on replies.org_id = first_responses.org_id
        and replies.conversation_id = first_responses.conversation_id
    where replies.reply_seconds is not null

),

agent_replies as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        replies.user_id,
        {{ drift_percentile_cont('replies.reply_seconds', 0.5) }} as reply_time_p50_seconds,
        {{ drift_percentile_cont('replies.reply_seconds', 0.9) }} as reply_time_p90_seconds
    from days_to_build
    inner join replies
        on days_to_build.org_id = replies.org_id
        and days_to_build.metric_date = replies.metric_date
    group by days_to_build.org_id, days_to_build.metric_date, replies.user_id

),

agent_days as (

    select
        days_to_build.org_id,
        days_to_build.metric_date,
        first_responses.first_responder_user_id as user_id,
        count(first_responses.conversation_id) as conversations_first_responded,
        {{ drift_percentile_cont('first_responses.first_response_seconds', 0.5) }}
            as first_response_p50_seconds,
        count(case when first_responses.touch_class = 'one' then 1 end) as one_touch_conversations,
        count(case when first_responses.touch_class = 'two' then 1 end) as two_touch_conversations,
        count(case when first_responses.touch_class = 'multi' then 1 end) as multi_touch_conversations,
        max(first_responses._refreshed_at) as _fct_refreshed_at
    from days_to_build
    left join first_responses
        on days_to_build.org_id = first_responses.org_id
        and days_to_build.metric_date = first_responses.metric_date
    group by days_to_build.org_id, days_to_build.metric_date, first_responses.first_responder_user_id

)

select
    agent_days.org_id,
    agent_days.metric_date,
    agent_days.user_id,
    users.user_name as agent_name,
    cast(agent_days.conversations_first_responded as bigint) as conversations_first_responded,
    agent_days.first_response_p50_seconds,
    agent_replies.reply_time_p50_seconds,
    agent_replies.reply_time_p90_seconds,
    cast(agent_days.one_touch_conversations as bigint) as one_touch_conversations,
    cast(agent_days.two_touch_conversations as bigint) as two_touch_conversations,
    cast(agent_days.multi_touch_conversations as bigint) as multi_touch_conversations,
    agent_days._fct_refreshed_at
from agent_days
left join users
    on agent_days.org_id = users.org_id
    and agent_days.user_id = users.user_id
left join agent_replies
    on agent_days.org_id = agent_replies.org_id
    and agent_days.metric_date = agent_replies.metric_date
    and agent_days.user_id = agent_replies.user_id
