{#
  The per-conversation intermediate models, as macros over their input relations.

  Each `models/intermediate/int_drift__*.sql` is one call of its macro on its `ref()`s, so the
  views, their data tests and unit tests are what they were. fct_conversations' incremental
  path calls the same macros on CTEs that hold only the conversations it rebuilds: DuckDB does
  not push a semi-join on (org_id, conversation_id) through the views' GROUP BYs and window
  functions, so filtering the inputs first is what keeps a day's refresh from reading and
  aggregating every message. One definition of each metric, two scopes.

  Arguments are relations or CTE names. A CTE passed in must not be named like the macro's own
  first CTE (e.g. pass `scoped_chat_messages`, not `chat_messages`).
#}

{#- Model int_drift__chat_messages (see its file for what it means). -#}
{% macro drift_chat_messages_sql(messages) -%}
with messages as (

    select * from {{ messages }}

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
    synced_at
from chat_messages
{%- endmacro %}


{#- Model int_drift__first_response (see its file for what it means). -#}
{% macro drift_first_response_sql(chat_messages) -%}
with chat_messages as (

    select * from {{ chat_messages }}

),

conversations as (

    select distinct org_id, conversation_id
    from chat_messages

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
    ) }} as first_response_seconds
from conversations
left join first_contact_messages
    on conversations.org_id = first_contact_messages.org_id
    and conversations.conversation_id = first_contact_messages.conversation_id
left join ranked_agent_replies
    on conversations.org_id = ranked_agent_replies.org_id
    and conversations.conversation_id = ranked_agent_replies.conversation_id
    and ranked_agent_replies.reply_rank = 1
{%- endmacro %}


{#- Model int_drift__bot_handoff (see its file for what it means). -#}
{% macro drift_bot_handoff_sql(chat_messages) -%}
with chat_messages as (

    select * from {{ chat_messages }}

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
        ) as first_agent_after_bot_at
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
    first_agent_after_bot_at is not null as handed_off
from handoffs
{%- endmacro %}


{#- Model int_drift__message_counts (see its file for what it means). -#}
{% macro drift_message_counts_sql(chat_messages) -%}
select
    org_id,
    conversation_id,
    count(*) as message_count,
    count(case when author_class = 'contact' then 1 end) as contact_message_count,
    count(case when author_class = 'agent' then 1 end) as agent_message_count,
    count(case when author_class = 'bot' then 1 end) as bot_message_count
from {{ chat_messages }}
group by org_id, conversation_id
{%- endmacro %}


{#- Model int_drift__status_history (see its file for what it means). -#}
{% macro drift_status_history_sql(status_events) -%}
with status_events as (

    select * from {{ status_events }}

),

sequenced as (

    select
        org_id,
        conversation_id,
        status,
        changed_at,
        event_source,
        recorded_at,
        row_number() over (
            partition by org_id, conversation_id
            order by changed_at, status
        ) as event_sequence,
        lag(status) over (
            partition by org_id, conversation_id
            order by changed_at, status
        ) as previous_status
    from status_events

)

select
    org_id,
    conversation_id,
    event_sequence,
    status,
    previous_status,
    changed_at,
    event_source,
    recorded_at,
    coalesce(status = 'open' and previous_status = 'closed', false) as is_reopen
from sequenced
{%- endmacro %}


{#- Model int_drift__close_times (see its file for what it means). -#}
{% macro drift_close_times_sql(conversations, status_history) -%}
with conversations as (

    select * from {{ conversations }}

),

status_history as (

    select * from {{ status_history }}

),

history_summary as (

    select
        org_id,
        conversation_id,
        min(case when status = 'closed' then changed_at end) as first_closed_event_at,
        count(case when is_reopen then 1 end) as reopen_count
    from status_history
    group by org_id, conversation_id

)

select
    conversations.org_id,
    conversations.conversation_id,
    history_summary.first_closed_event_at,
    case
        when history_summary.first_closed_event_at is not null
            then history_summary.first_closed_event_at
        when conversations.status = 'closed'
            then conversations.updated_at
    end as first_closed_at,
    case
        when history_summary.first_closed_event_at is not null then 'status_event'
        when conversations.status = 'closed' and conversations.updated_at is not null then 'updated_at'
    end as first_closed_at_source,
    coalesce(history_summary.reopen_count, 0) as reopen_count
from conversations
left join history_summary
    on conversations.org_id = history_summary.org_id
    and conversations.conversation_id = history_summary.conversation_id
{%- endmacro %}


{#- Model int_drift__business_hours_first_response (see its file for what it means). -#}
{% macro drift_business_hours_first_response_sql(first_responses) -%}
{%- set tz = drift_business_hours_timezone() %}

with responses as (

    select
        org_id,
        conversation_id,
        first_contact_message_at as response_started_at,
        first_agent_message_at as response_ended_at
    from {{ first_responses }}
    where first_contact_message_at is not null
        and first_agent_message_at is not null

),

schedule as (

    {{ drift_business_hours_schedule_sql() }}

),

holidays as (

    {{ drift_business_holidays_sql() }}

),

-- UTC dates, widened by a day on each side: every local day the responses touch is inside.
span as (

    select
        {{ dbt.dateadd('day', -1, 'cast(min(response_started_at) as date)') }} as first_date,
        {{ dbt.dateadd('day', 1, 'cast(max(response_ended_at) as date)') }} as last_date
    from responses
    having count(*) > 0

),

calendar as (

    {{ drift_expand_dates('span', 'first_date', 'last_date', 'local_date') }}

),

open_periods as (

    select
        {{ drift_local_to_utc(
            dbt.dateadd('minute', 'schedule.open_minute', 'cast(calendar.local_date as timestamp)'),
            tz
        ) }} as opens_at,
        {{ drift_local_to_utc(
            dbt.dateadd('minute', 'schedule.close_minute', 'cast(calendar.local_date as timestamp)'),
            tz
        ) }} as closes_at
    from calendar
    inner join schedule
        on schedule.iso_weekday = cast(extract(isodow from calendar.local_date) as integer)
    where not exists (
        select 1 from holidays where holidays.holiday_date = calendar.local_date
    )

),

overlapping_periods as (

    select
        responses.org_id,
        responses.conversation_id,
        case
            when responses.response_started_at > open_periods.opens_at
                then responses.response_started_at
            else open_periods.opens_at
        end as overlap_starts_at,
        case
            when responses.response_ended_at < open_periods.closes_at
                then responses.response_ended_at
            else open_periods.closes_at
        end as overlap_ends_at
    from responses
    inner join open_periods
        on open_periods.opens_at < responses.response_ended_at
        and open_periods.closes_at > responses.response_started_at

),

business_seconds as (

    select
        org_id,
        conversation_id,
        sum({{ drift_seconds_between('overlap_starts_at', 'overlap_ends_at') }}) as seconds_in_hours
    from overlapping_periods
    group by org_id, conversation_id

)

select
    responses.org_id,
    responses.conversation_id,
    cast(coalesce(business_seconds.seconds_in_hours, 0) as {{ drift_type_double() }})
        as first_response_business_seconds
from responses
left join business_seconds
    on responses.org_id = business_seconds.org_id
    and responses.conversation_id = business_seconds.conversation_id
{%- endmacro %}


{#- Model int_drift__conversation_watermarks (see its file for what it means). -#}
{% macro drift_conversation_watermarks_sql(conversations, messages, status_events) -%}
with conversations as (

    select org_id, conversation_id, synced_at, case when synced_at is null then 1 else 0 end as unstamped
    from {{ conversations }}

),

messages as (

    select
        org_id,
        conversation_id,
        max(synced_at) as synced_at,
        count(*) - count(synced_at) as unstamped
    from {{ messages }}
    group by org_id, conversation_id

),

status_events as (

    select
        org_id,
        conversation_id,
        max(recorded_at) as synced_at,
        count(*) - count(recorded_at) as unstamped
    from {{ status_events }}
    group by org_id, conversation_id

),

loads as (

    select * from conversations
    union all
    select * from messages
    union all
    select * from status_events

)

select
    org_id,
    conversation_id,
    max(synced_at) as source_synced_at,
    sum(unstamped) > 0 as has_unstamped_rows
from loads
group by org_id, conversation_id
{%- endmacro %}
