{{
    config(
        unique_key=['org_id', 'playbook_id'],
        pre_hook="{% if is_incremental() %}delete from {{ this }} as built where not exists (select 1 from {{ ref('stg_drift__playbooks') }} as playbooks where playbooks.org_id = built.org_id and playbooks.playbook_id = built.playbook_id){% else %}select 1{% endif %}"
    )
}}
-- Each playbook's name and the load that last changed it. Every listing re-writes every
-- playbook (last_listed_at moves), so raw.playbooks.synced_at says nothing about a rename;
-- `_name_changed_at` keeps the load stamp at which the current name first appeared. The
-- watermarks use it: a rename, or a playbook first listed after its conversations were built,
-- rebuilds that playbook's conversations and nothing else.
-- Playbooks are few: every run recomputes all of them.
with playbooks as (

    select * from {{ ref('stg_drift__playbooks') }}

)

select
    playbooks.org_id,
    playbooks.playbook_id,
    playbooks.playbook_name,
    {%- if is_incremental() %}
    case
        when built.playbook_id is not null
            and built._name_changed_at is not null
            and built.playbook_name is not distinct from playbooks.playbook_name
            then built._name_changed_at
        else playbooks.synced_at
    end as _name_changed_at
    {%- else %}
    playbooks.synced_at as _name_changed_at
    {%- endif %}
from playbooks
{%- if is_incremental() %}
left join {{ this }} as built
    on playbooks.org_id = built.org_id
    and playbooks.playbook_id = built.playbook_id
{%- endif %}
