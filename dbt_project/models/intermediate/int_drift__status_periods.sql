{{
    config(
        pre_hook="{{ drift_clear_conversations_to_rebuild(only_rebuilt_where=drift_rebuilt_without_periods()) }}",
        on_schema_change='append_new_columns',
    )
}}
-- Each conversation's status over time, as periods [started_at, ended_at) (ended_at null: still
-- in that status). A conversation is open from its created_at (Drift opens every conversation)
-- until its first recorded status event; then each recorded event (int_drift__status_history:
-- webhook, poll and report) starts a period. When the recorded history does not end in the
-- status the conversation has now (without events: open), the current status starts a last
-- period at updated_at (Drift moves updatedAt on every status change), the rule first_closed_at
-- falls back on. Periods of zero length (two changes at one instant) are dropped.
-- Incremental: the conversations to rebuild (macros/metrics/conversations_to_rebuild.sql),
-- read with their status history (macros/metrics/conversation_status_inputs.sql). A rebuilt
-- conversation's previous rows stay until the delete+insert replaces them, so the run compares
-- them with the new ones: `_periods_changed_from` is the earliest instant its periods differ
-- (agg_daily_backlog rebuilds the days from there, not from the conversation's creation).
with {{ drift_conversation_status_inputs() }},

last_recorded as (

    select
        org_id,
        conversation_id,
        max(changed_at) as last_changed_at,
        max(event_sequence) as last_event_sequence
    from status_history
    group by org_id, conversation_id

),

changes as (

    -- the start: open at created_at, before any recorded event at the same instant
    select
        conversations.org_id,
        conversations.conversation_id,
        conversations.created_at as changed_at,
        0 as change_order,
        'open' as status
    from conversations
    where conversations.created_at is not null

    union all

    select
        org_id,
        conversation_id,
        changed_at,
        event_sequence as change_order,
        status
    from status_history

    union all

    -- the status now, when the recorded history ends in another one (or there is none)
    select
        conversations.org_id,
        conversations.conversation_id,
        -- never before the history it follows, nor before the conversation existed
        case
            when last_recorded.last_changed_at > conversations.updated_at
                and last_recorded.last_changed_at > coalesce(conversations.created_at, last_recorded.last_changed_at)
                then last_recorded.last_changed_at
            when conversations.created_at > conversations.updated_at then conversations.created_at
            else conversations.updated_at
        end as changed_at,
        coalesce(last_recorded.last_event_sequence, 0) + 1 as change_order,
        conversations.status
    from conversations
    left join last_recorded
        on conversations.org_id = last_recorded.org_id
        and conversations.conversation_id = last_recorded.conversation_id
    left join status_history as last_event
        on last_event.org_id = last_recorded.org_id
        and last_event.conversation_id = last_recorded.conversation_id
        and last_event.event_sequence = last_recorded.last_event_sequence
    where conversations.status is not null
        and conversations.updated_at is not null
        and coalesce(last_event.status, 'open') <> conversations.status

),

periods as (

    select
        org_id,
        conversation_id,
        status,
        changed_at as started_at,
        lead(changed_at) over (
            partition by org_id, conversation_id
            order by changed_at, change_order
        ) as ended_at
    from changes

),

built as (

    select
        periods.org_id,
        periods.conversation_id,
        conversations.inbox_id,
        conversations.created_at,
        periods.status,
        periods.started_at,
        periods.ended_at,
        conversations._source_synced_at
    from periods
    inner join conversations
        on periods.org_id = conversations.org_id
        and periods.conversation_id = conversations.conversation_id
    where periods.ended_at is null or periods.ended_at > periods.started_at

){%- if is_incremental() %},

-- The rebuilt conversations' rows as the table held them before this run.
previous as (

    select
        previous_period.org_id,
        previous_period.conversation_id,
        previous_period.inbox_id,
        previous_period.created_at,
        previous_period.status,
        previous_period.started_at,
        previous_period.ended_at,
        previous_period._source_synced_at
    from {{ this }} as previous_period
    inner join rebuild
        on previous_period.org_id = rebuild.org_id
        and previous_period.conversation_id = rebuild.conversation_id

),

-- Where each period that is not as before differs: where the earlier of its two ends falls
-- when only its end moved (the status until then is the same), else its start. A changed
-- inbox or created_at changes every period, so the conversation differs from its start.
differences as (

    select
        coalesce(rebuilt.org_id, previous_period.org_id) as org_id,
        coalesce(rebuilt.conversation_id, previous_period.conversation_id) as conversation_id,
        case
            when rebuilt.org_id is not null and previous_period.org_id is not null
                then least(coalesce(rebuilt.ended_at, previous_period.ended_at), coalesce(previous_period.ended_at, rebuilt.ended_at))
            else coalesce(rebuilt.started_at, previous_period.started_at)
        end as differs_at
    from built as rebuilt
    full outer join previous as previous_period
        on rebuilt.org_id = previous_period.org_id
        and rebuilt.conversation_id = previous_period.conversation_id
        and rebuilt.status = previous_period.status
        and rebuilt.started_at = previous_period.started_at
        and rebuilt.inbox_id is not distinct from previous_period.inbox_id
        and rebuilt.created_at is not distinct from previous_period.created_at
    where rebuilt.org_id is null
        or previous_period.org_id is null
        or rebuilt.ended_at is distinct from previous_period.ended_at

),

changed_from as (

    select org_id, conversation_id, min(differs_at) as changed_from
    from differences
    group by org_id, conversation_id

),

previous_builds as (

    select org_id, conversation_id, max(_source_synced_at) as previous_source_synced_at
    from previous
    group by org_id, conversation_id

)
{%- endif %}

select
    built.*,
    {%- if is_incremental() %}
    changed_from.changed_from as _periods_changed_from,
    previous_builds.previous_source_synced_at as _previous_source_synced_at
    {%- else %}
    cast(null as {{ dbt.type_timestamp() }}) as _periods_changed_from,
    cast(null as {{ dbt.type_timestamp() }}) as _previous_source_synced_at
    {%- endif %}
from built
{%- if is_incremental() %}
left join changed_from
    on built.org_id = changed_from.org_id
    and built.conversation_id = changed_from.conversation_id
left join previous_builds
    on built.org_id = previous_builds.org_id
    and built.conversation_id = previous_builds.conversation_id
{%- endif %}
