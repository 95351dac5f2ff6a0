{#-
  Reply time p50/p90 per day over every reply (int_drift__replies with a reply_seconds) of
  `conversations`, the conversations of the days to build (drift_rows_of_days_to_build), filed
  under the day the conversation was created: a long conversation weighs by its replies. One
  definition for agg_daily_metrics and, with `per_first_responder`, agg_agent_daily (each day
  split by the conversation's first responder, as dbt_zendesk attributes ticket metrics to the
  assignee, whoever wrote each reply). Only days with a reply get a row. One join, replies to
  their conversation: the only hash table it holds is one of the two.
-#}
{% macro drift_daily_reply_times(conversations, per_first_responder=false) %}
    {%- set group_columns = ['org_id', 'metric_date'] + (['user_id'] if per_first_responder else []) %}
    select
        {{ group_columns | join(', ') }},
        {{ drift_ranked_percentile('reply_seconds', 0.5) }} as reply_time_p50_seconds,
        {{ drift_ranked_percentile('reply_seconds', 0.9) }} as reply_time_p90_seconds
    from (
        -- ranked within the day (cross_db.sql: a day's replies are too many at 10M
        -- conversations for quantile_cont, which cannot spill)
        select
            day_conversations.org_id,
            day_conversations.metric_date,
            {%- if per_first_responder %}
            day_conversations.first_responder_user_id as user_id,
            {%- endif %}
            replies.reply_seconds,
            {{ drift_value_ranks('replies.reply_seconds',
                                 'day_conversations.org_id, day_conversations.metric_date'
                                 ~ (', day_conversations.first_responder_user_id' if per_first_responder else '')) }}
        from {{ conversations }} as day_conversations
        inner join {{ ref('int_drift__replies') }} as replies
            on day_conversations.org_id = replies.org_id
            and day_conversations.conversation_id = replies.conversation_id
        where replies.reply_seconds is not null
    ) as ranked_replies
    group by {{ group_columns | join(', ') }}
{% endmacro %}
