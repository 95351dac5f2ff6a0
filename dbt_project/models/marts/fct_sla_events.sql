{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'conversation_id', 'turn_number', 'sla_policy'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        pre_hook="{{ drift_clear_sla_conversations_to_rebuild() }}"
    )
}}
{#-
  One row per SLA policy application, like dbt_zendesk's zendesk__sla_policies, on the policies
  of var sla_policies (macros/sla_policies.sql). A conversation's first contact turn
  (int_drift__replies) gets each matching policy's first_reply target, every later turn its
  next_reply target; a policy matches the conversation's inbox (or every inbox). The clock
  runs from the turn's first contact message (sla_applied_at) until its reply, or until the
  conversation is closed if that comes first (nothing is left to answer), or until now (var
  sla_as_of, else the run's start) while it waits. Business-hours policies count only the
  schedule's open time (int_drift__business_hours_calendar's business clock).

  Incremental (macros/sla_policies.sql, drift_clear_sla_conversations_to_rebuild): a run
  measures again
    - every turn of the conversations whose watermark moved (conversations_to_rebuild.sql),
      all of them when the policies or the schedule changed (`_sla_version`);
    - the turns still waiting, when "now" moved since they were measured (`_sla_as_of`): their
      elapsed time, breach and activity move with the clock;
    - the turns whose breach instant lies past the calendar's end (sla_breach_at null): the
      calendar reaches further as messages arrive.
  Every other row (a wait that ended) is final and stays. The last two kinds start from their
  stored application (when the wait began and ended, the target: what a conversation whose
  data did not change keeps); from there every row goes through the same SQL as in a full
  build, so an incremental run equals a full refresh at the same "now".
  Rebuilt whole every run before (a table), the model took 10.6 s of every webhook refresh at
  1M conversations with two policies.
-#}
{%- set incremental = is_incremental() and not drift_sla_built_whole() %}

with policies as (

    {{ drift_sla_policies_sql() }}

),

rebuild as (

    {{ drift_conversations_to_rebuild(drift_sla_changed(), incremental=incremental) }}

),

conversations as (

    select org_id, conversation_id, inbox_id
    from {{ ref('stg_drift__conversations') }}

),

turns as (

    select
        replies.org_id,
        replies.conversation_id,
        replies.turn_number,
        conversations.inbox_id,
        replies.waiting_since_at,
        replies.replied_at,
        case when replies.turn_number = 1 then 'first_reply' else 'next_reply' end as metric,
        rebuild.source_synced_at as _source_synced_at
    from {{ ref('int_drift__replies') }} as replies
    inner join rebuild
        on replies.org_id = rebuild.org_id
        and replies.conversation_id = rebuild.conversation_id
    inner join conversations
        on replies.org_id = conversations.org_id
        and replies.conversation_id = conversations.conversation_id

),

-- The first close at or after the wait began (a reopened conversation's earlier closes are
-- before its new turns).
closes as (

    select
        turns.org_id,
        turns.conversation_id,
        turns.turn_number,
        min(periods.started_at) as closed_at
    from turns
    inner join {{ ref('int_drift__status_periods') }} as periods
        on turns.org_id = periods.org_id
        and turns.conversation_id = periods.conversation_id
        and periods.status = 'closed'
        and periods.started_at >= turns.waiting_since_at
    group by turns.org_id, turns.conversation_id, turns.turn_number

),

applications as (

    select
        turns.org_id,
        turns.conversation_id,
        turns.turn_number,
        turns.inbox_id,
        policies.sla_policy,
        policies.metric,
        policies.target_seconds,
        policies.in_business_hours,
        turns.waiting_since_at as sla_applied_at,
        case
            when turns.replied_at is null then closes.closed_at
            when closes.closed_at is null then turns.replied_at
            when closes.closed_at < turns.replied_at then closes.closed_at
            else turns.replied_at
        end as sla_ended_at,
        turns._source_synced_at
    from turns
    inner join policies
        on policies.metric = turns.metric
        and (policies.inbox_id is null or policies.inbox_id = turns.inbox_id)
    left join closes
        on turns.org_id = closes.org_id
        and turns.conversation_id = closes.conversation_id
        and turns.turn_number = closes.turn_number
    {%- if incremental %}

    -- Measured again from the stored application (a conversation not rebuilt has the same
    -- turns, close and inbox as when its rows were built): a wait still open when "now"
    -- moved, or a breach past the calendar's end. From here on every row takes one path.
    union all

    select
        built.org_id,
        built.conversation_id,
        built.turn_number,
        built.inbox_id,
        built.sla_policy,
        built.metric,
        built.target_seconds,
        built.in_business_hours,
        built.sla_applied_at,
        built.sla_ended_at,
        built._source_synced_at
    from {{ this }} as built
    where (
        (built.sla_ended_at is null and built._sla_as_of <> {{ drift_sla_as_of() }})
        or built.sla_breach_at is null
    )
        and not exists (
            select 1
            from rebuild
            where rebuild.org_id = built.org_id
                and rebuild.conversation_id = built.conversation_id
        )
    {%- endif %}

),

measured as (

    select
        applications.*,
        coalesce(sla_ended_at, {{ drift_sla_as_of() }}) as measured_until
    from applications

),

calendar as (

    select
        opens_at,
        closes_at,
        coalesce(previous_closes_at, cast('1900-01-01' as timestamp)) as window_starts_at,
        business_seconds_before,
        business_seconds_before + {{ drift_seconds_between('opens_at', 'closes_at') }} as business_seconds_through
    from {{ ref('int_drift__business_hours_calendar') }}

),

-- Business positions (business_seconds_before + the seconds past opening) of the start and of
-- the end of each business-hours wait: an instant lies in exactly one calendar window.
business_positions as (

    select
        measured.org_id,
        measured.conversation_id,
        measured.turn_number,
        measured.sla_policy,
        measured.target_seconds,
        start_period.business_seconds_before + case
            when measured.sla_applied_at > start_period.opens_at
                then {{ drift_seconds_between('start_period.opens_at', 'measured.sla_applied_at') }}
            else 0
        end as applied_position,
        end_period.business_seconds_before + case
            when measured.measured_until > end_period.opens_at
                then {{ drift_seconds_between('end_period.opens_at', 'measured.measured_until') }}
            else 0
        end as measured_position
    from measured
    left join calendar as start_period
        on start_period.window_starts_at <= measured.sla_applied_at
        and start_period.closes_at > measured.sla_applied_at
    left join calendar as end_period
        on end_period.window_starts_at <= measured.measured_until
        and end_period.closes_at > measured.measured_until
    where measured.in_business_hours

),

business_breaches as (

    select
        business_positions.*,
        {{ drift_add_seconds(
            'breach_period.opens_at',
            '(business_positions.applied_position + business_positions.target_seconds) - breach_period.business_seconds_before'
        ) }} as sla_breach_at
    from business_positions
    left join calendar as breach_period
        on breach_period.business_seconds_before < business_positions.applied_position + business_positions.target_seconds
        and breach_period.business_seconds_through >= business_positions.applied_position + business_positions.target_seconds

),

timed as (

    select
        measured.*,
        case
            when measured.in_business_hours then business_breaches.sla_breach_at
            else {{ drift_add_seconds('measured.sla_applied_at', 'measured.target_seconds') }}
        end as sla_breach_at,
        case
            when measured.in_business_hours
                then business_breaches.measured_position - business_breaches.applied_position
            else {{ drift_seconds_between('measured.sla_applied_at', 'measured.measured_until') }}
        end as elapsed_seconds
    from measured
    left join business_breaches
        on measured.org_id = business_breaches.org_id
        and measured.conversation_id = business_breaches.conversation_id
        and measured.turn_number = business_breaches.turn_number
        and measured.sla_policy = business_breaches.sla_policy

)

select
    org_id,
    conversation_id,
    turn_number,
    inbox_id,
    sla_policy,
    metric,
    target_seconds,
    in_business_hours,
    sla_applied_at,
    sla_breach_at,
    sla_ended_at,
    cast(elapsed_seconds as {{ drift_type_double() }}) as elapsed_seconds,
    coalesce(measured_until > sla_breach_at, false) as is_breached,
    sla_ended_at is null and not coalesce(measured_until > sla_breach_at, false) as is_active,
    _source_synced_at,
    cast('{{ drift_sla_version() }}' as {{ dbt.type_string() }}) as _sla_version,
    {{ drift_sla_as_of() }} as _sla_as_of
from timed
