{{
    config(
        unique_key=['org_id', 'slug'],
        pre_hook="{% if is_incremental() %}delete from {{ this }} as built where not exists (select 1 from {{ ref('stg_drift__meetings') }} as meetings where meetings.org_id = built.org_id and meetings.slug = built.slug){% else %}select 1{% endif %}"
    )
}}
-- One row per meeting with its latest observed status: the newest of Drift's current row
-- (raw.meetings) and every state the pipeline observed (raw.meeting_changes), by Drift's
-- updatedAt; at the same updatedAt the current row wins. A meeting is cancelled when that
-- status is CANCELED/CANCELLED in any case.
-- Meetings are few (a handful a day), so every run recomputes all of them. What it keeps from
-- the previous build is `_booking_changed_at`: the load that last changed what a conversation
-- reads of its meetings (which conversation, cancelled or not, when booked). The watermarks use
-- it, so a sync that re-stamps unchanged meetings rebuilds no conversation, and a cancellation
-- or rebooking rebuilds exactly its conversation.
with meetings as (

    select * from {{ ref('stg_drift__meetings') }}

),

changes as (

    select * from {{ ref('stg_drift__meeting_changes') }}

),

observations as (

    select org_id, slug, updated_at, status, slot_start_at, 0 as observation_rank
    from meetings

    union all

    select org_id, slug, updated_at, status, slot_start_at, 1 as observation_rank
    from changes

),

ranked_observations as (

    select
        *,
        row_number() over (
            partition by org_id, slug
            order by updated_at desc nulls last, observation_rank, status
        ) as recency
    from observations

),

latest_observations as (

    select * from ranked_observations where recency = 1

),

change_loads as (

    select org_id, slug, max(recorded_at) as recorded_at, count(*) - count(recorded_at) as unstamped
    from changes
    group by org_id, slug

),

latest as (

    select
        meetings.org_id,
        meetings.slug,
        coalesce(latest_observations.status, meetings.status) as status,
        coalesce(upper(coalesce(latest_observations.status, meetings.status)) in ('CANCELED', 'CANCELLED'), false)
            as is_cancelled,
        meetings.meeting_source,
        meetings.meeting_type,
        meetings.agent_user_id,
        meetings.scheduler_contact_id,
        meetings.conversation_id,
        meetings.booked_by_user_id,
        meetings.scheduled_at,
        coalesce(latest_observations.slot_start_at, meetings.slot_start_at) as slot_start_at,
        meetings.slot_end_at,
        latest_observations.updated_at,
        -- The newest load of the meeting's rows; null while any of them is unstamped.
        case
            when meetings.synced_at is null or coalesce(change_loads.unstamped, 0) > 0 then null
            when change_loads.recorded_at > meetings.synced_at then change_loads.recorded_at
            else meetings.synced_at
        end as _loaded_at
    from meetings
    left join latest_observations
        on meetings.org_id = latest_observations.org_id
        and meetings.slug = latest_observations.slug
    left join change_loads
        on meetings.org_id = change_loads.org_id
        and meetings.slug = change_loads.slug

)

select
    latest.*,
    {%- if is_incremental() %}
    case
        when built.slug is not null
            and built._booking_changed_at is not null
            and built.conversation_id is not distinct from latest.conversation_id
            and built.is_cancelled = latest.is_cancelled
            and built.scheduled_at is not distinct from latest.scheduled_at
            then built._booking_changed_at
        else latest._loaded_at
    end as _booking_changed_at
    {%- else %}
    latest._loaded_at as _booking_changed_at
    {%- endif %}
from latest
{%- if is_incremental() %}
left join {{ this }} as built
    on latest.org_id = built.org_id
    and latest.slug = built.slug
{%- endif %}
