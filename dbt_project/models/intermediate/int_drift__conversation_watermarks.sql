{#- A table built before is_departed existed gains the column (null reads as false). -#}
{{
    config(
        on_schema_change='append_new_columns',
        post_hook=[
            "update {{ this }} as built
             set is_departed = true
             where not coalesce(built.is_departed, false)
                 and not exists (
                     select 1 from {{ ref('stg_drift__conversations') }} as conversations
                     where conversations.org_id = built.org_id
                         and conversations.conversation_id = built.conversation_id
                 )"
        ]
    )
}}
-- The latest load time of everything a conversation's metrics read (its row, its messages, its
-- status events, its widget events, the changes of its meetings, its playbook's name). Every
-- incremental model downstream rebuilds the conversations whose watermark moved past the newest
-- one it holds (macros/metrics/conversations_to_rebuild.sql).
-- Incremental runs find the conversations with a raw row loaded after the newest watermark
-- here, from the load stamps alone (no per-conversation aggregation over all messages), and
-- recompute just theirs. A conversation that left raw (a hard delete) keeps its row, marked
-- `is_departed` by the post-hook: every model downstream then deletes its rows by key, a lookup
-- as cheap as the rebuild's, instead of anti-joining its whole table with this one on every
-- run. A conversation that comes back is loaded again and its row replaced. Its rows loaded up
-- to the previous build are already in its previous watermark, so `loads` reads only the rows
-- loaded since and the unstamped ones (drift_rows_loaded_since) beside that watermark, not
-- every message of the rebuilt conversations (a join with all ten million messages at 1M
-- conversations: 0.8 s of the model's 0.9 s).
{%- set lookback_minutes = var('incremental_lookback_minutes', 0) | int %}

with

{% if is_incremental() %}
previous_build as (

    select coalesce(
        {{ dbt.dateadd('minute', -1 * lookback_minutes, 'max(source_synced_at)') }},
        cast('1900-01-01' as timestamp)
    ) as source_synced_at
    from {{ this }}

),

loaded_since as (

    select conversations.org_id, conversations.conversation_id
    from {{ ref('stg_drift__conversations') }} as conversations
    cross join previous_build
    where conversations.synced_at is null
        or conversations.synced_at > previous_build.source_synced_at

    union

    select messages.org_id, messages.conversation_id
    from {{ ref('stg_drift__messages') }} as messages
    cross join previous_build
    where messages.synced_at is null
        or messages.synced_at > previous_build.source_synced_at

    union

    select status_events.org_id, status_events.conversation_id
    from {{ ref('stg_drift__status_events') }} as status_events
    cross join previous_build
    where status_events.recorded_at is null
        or status_events.recorded_at > previous_build.source_synced_at

    union

    -- A widget event applied after the conversation was built changes its attribution.
    select widget_events.org_id, widget_events.conversation_id
    from {{ ref('stg_drift__widget_events') }} as widget_events
    cross join previous_build
    where widget_events.synced_at is null
        or widget_events.synced_at > previous_build.source_synced_at

    union

    -- A meeting booked, cancelled or rebooked in the conversation (stamped only by the loads
    -- that changed it: int_drift__meeting_latest).
    select meetings.org_id, meetings.conversation_id
    from {{ ref('int_drift__meeting_latest') }} as meetings
    cross join previous_build
    where meetings.conversation_id is not null
        and (meetings._booking_changed_at is null
             or meetings._booking_changed_at > previous_build.source_synced_at)

    union

    -- Its playbook renamed, or listed for the first time (int_drift__playbook_names).
    select conversations.org_id, conversations.conversation_id
    from {{ ref('stg_drift__conversations') }} as conversations
    inner join {{ ref('int_drift__playbook_names') }} as playbooks
        on conversations.org_id = playbooks.org_id
        and conversations.related_playbook_id = playbooks.playbook_id
    cross join previous_build
    where playbooks._name_changed_at is null
        or playbooks._name_changed_at > previous_build.source_synced_at

    union

    -- Previously built on unstamped rows: recompute until they are stamped.
    select org_id, conversation_id
    from {{ this }}
    where has_unstamped_rows

),
{% endif %}

conversations as (

    select
        conversations.org_id,
        conversations.conversation_id,
        conversations.related_playbook_id,
        conversations.synced_at
    from {{ ref('stg_drift__conversations') }} as conversations
    {%- if is_incremental() %}
    inner join loaded_since
        on conversations.org_id = loaded_since.org_id
        and conversations.conversation_id = loaded_since.conversation_id
    {%- endif %}

),

loads as (

    select
        org_id,
        conversation_id,
        synced_at,
        case when synced_at is null then 1 else 0 end as unstamped
    from conversations

    union all

    select
        messages.org_id,
        messages.conversation_id,
        max(messages.synced_at) as synced_at,
        count(*) - count(messages.synced_at) as unstamped
    from {{ drift_rows_loaded_since(ref('stg_drift__messages'), 'synced_at') }} as messages
    inner join conversations
        on messages.org_id = conversations.org_id
        and messages.conversation_id = conversations.conversation_id
    group by messages.org_id, messages.conversation_id

    union all

    select
        status_events.org_id,
        status_events.conversation_id,
        max(status_events.recorded_at) as synced_at,
        count(*) - count(status_events.recorded_at) as unstamped
    from {{ drift_rows_loaded_since(ref('stg_drift__status_events'), 'recorded_at') }} as status_events
    inner join conversations
        on status_events.org_id = conversations.org_id
        and status_events.conversation_id = conversations.conversation_id
    group by status_events.org_id, status_events.conversation_id

    union all

    select
        widget_events.org_id,
        widget_events.conversation_id,
        max(widget_events.synced_at) as synced_at,
        count(*) - count(widget_events.synced_at) as unstamped
    from {{ drift_rows_loaded_since(ref('stg_drift__widget_events'), 'synced_at') }} as widget_events
    inner join conversations
        on widget_events.org_id = conversations.org_id
        and widget_events.conversation_id = conversations.conversation_id
    group by widget_events.org_id, widget_events.conversation_id

    union all

    select
        meetings.org_id,
        meetings.conversation_id,
        max(meetings._booking_changed_at) as synced_at,
        count(*) - count(meetings._booking_changed_at) as unstamped
    from {{ drift_rows_loaded_since(ref('int_drift__meeting_latest'), '_booking_changed_at') }} as meetings
    inner join conversations
        on meetings.org_id = conversations.org_id
        and meetings.conversation_id = conversations.conversation_id
    group by meetings.org_id, meetings.conversation_id

    union all

    select
        conversations.org_id,
        conversations.conversation_id,
        playbooks._name_changed_at as synced_at,
        case when playbooks._name_changed_at is null then 1 else 0 end as unstamped
    from conversations
    inner join {{ ref('int_drift__playbook_names') }} as playbooks
        on conversations.org_id = playbooks.org_id
        and conversations.related_playbook_id = playbooks.playbook_id
    {%- if is_incremental() %}

    union all

    -- what the rows loaded before gave (greatest of the two: a rebuild never lowers it)
    select previous.org_id, previous.conversation_id, previous.source_synced_at as synced_at, 0 as unstamped
    from {{ this }} as previous
    inner join conversations
        on previous.org_id = conversations.org_id
        and previous.conversation_id = conversations.conversation_id
    {%- endif %}

)

select
    org_id,
    conversation_id,
    max(synced_at) as source_synced_at,
    sum(unstamped) > 0 as has_unstamped_rows,
    false as is_departed
from loads
group by org_id, conversation_id
