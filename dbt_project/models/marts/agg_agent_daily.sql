{{ config(**drift_daily_aggregate_config('conversations_first_responded', on_schema_change='append_new_columns')) }}
{#-
  Rows are (org_id, metric_date, user_id); incremental runs replace whole days (the delete+insert
  key is the day, so a user who stopped being a first responder on a rebuilt day disappears).
  Days rebuilt: those holding a conversation fct_conversations rebuilt since this table last read
  it, those whose responded-conversation count no longer matches (erasure, moved day), and those
  showing an agent name that raw.users no longer has. A day left without first responders is
  written as a zero row and removed by the post-hook. Together: incremental equals full refresh.

  Memory: the counts and the reply times read the first responses of those days
  (drift_rows_of_days_to_build), not a join of the days with them, so an incremental run
  rebuilding every day plans as a full build and needs no more memory; the days join only the
  finished agent-day rows.
-#}

with conversations as (

    {{ drift_conversations_by_day() }}

),

first_responses as (

    select *
    from conversations
    where first_responder_user_id is not null

),

users as (

    select * from {{ ref('stg_drift__users') }}

),

{#- An agent renamed in raw.users: every day still showing the old name. -#}
{% set renamed_agent_days -%}
    select built.org_id, built.metric_date
    from {{ this }} as built
    left join users
        on built.org_id = users.org_id
        and built.user_id = users.user_id
    where built.agent_name is distinct from users.user_name
{%- endset %}

days_to_build as (

    {{ drift_days_to_build('conversations', 'first_responses', 'conversations_first_responded',
                           rebuild_all_without=['reply_time_p50_seconds', 'one_touch_conversations'],
                           extra_days=renamed_agent_days) }}

),

day_first_responses as (

    {{ drift_rows_of_days_to_build('first_responses') }}

),

-- Every reply in the conversations the agent answered first, whoever wrote it
-- (macros/metrics/daily_reply_times.sql).
agent_replies as (

    {{ drift_daily_reply_times('day_first_responses', per_first_responder=true) }}

),

agent_days as (

    select
        org_id,
        metric_date,
        first_responder_user_id as user_id,
        count(*) as conversations_first_responded,
        {{ drift_percentile_cont('first_response_seconds', 0.5) }} as first_response_p50_seconds,
        count(case when touch_class = 'one' then 1 end) as one_touch_conversations,
        count(case when touch_class = 'two' then 1 end) as two_touch_conversations,
        count(case when touch_class = 'multi' then 1 end) as multi_touch_conversations,
        max(_refreshed_at) as _fct_refreshed_at
    from day_first_responses
    group by org_id, metric_date, first_responder_user_id

)

select
    days_to_build.org_id,
    days_to_build.metric_date,
    agent_days.user_id,
    users.user_name as agent_name,
    -- 0 on a day left without first responders (no `agent_days` row): the post-hook removes it
    cast(coalesce(agent_days.conversations_first_responded, 0) as bigint) as conversations_first_responded,
    agent_days.first_response_p50_seconds,
    agent_replies.reply_time_p50_seconds,
    agent_replies.reply_time_p90_seconds,
    cast(agent_days.one_touch_conversations as bigint) as one_touch_conversations,
    cast(agent_days.two_touch_conversations as bigint) as two_touch_conversations,
    cast(agent_days.multi_touch_conversations as bigint) as multi_touch_conversations,
    agent_days._fct_refreshed_at
from days_to_build
left join agent_days
    on days_to_build.org_id = agent_days.org_id
    and days_to_build.metric_date = agent_days.metric_date
left join users
    on agent_days.org_id = users.org_id
    and agent_days.user_id = users.user_id
left join agent_replies
    on agent_days.org_id = agent_replies.org_id
    and agent_days.metric_date = agent_replies.metric_date
    and agent_days.user_id = agent_replies.user_id
