{#
  SLA policies, read from the dbt var `sla_policies` (see dbt_project.yml): a list of
    {name: "Standard", inbox_ids: [3, 4], first_reply_seconds: 3600,
     next_reply_seconds: 7200, in_business_hours: true}
  inbox_ids missing or empty: every inbox. A policy needs a name and at least one target.
  Bad values fail compilation with a message that names the policy and the field.
#}

{% macro drift_sla_policy_rows() -%}
    {%- set policies = var('sla_policies', []) or [] -%}
    {%- if policies is string or policies is mapping -%}
        {{ exceptions.raise_compiler_error("var sla_policies must be a list of policies ({name: ..., first_reply_seconds: ..., ...})") }}
    {%- endif -%}
    {%- set known = ['name', 'inbox_ids', 'first_reply_seconds', 'next_reply_seconds', 'in_business_hours'] -%}
    {%- set names = [] -%}
    {%- set rows = [] -%}
    {%- for policy in policies -%}
        {%- if policy is not mapping -%}
            {{ exceptions.raise_compiler_error("var sla_policies: each policy must be a mapping, got " ~ policy) }}
        {%- endif -%}
        {%- set name = policy.get('name') -%}
        {%- if name is not string or not modules.re.match('^[A-Za-z0-9 _.:/()-]+$', name) -%}
            {{ exceptions.raise_compiler_error("var sla_policies: policy " ~ loop.index ~ " needs a name of letters, digits, spaces and _.:/()-, got " ~ name) }}
        {%- endif -%}
        {%- if name in names -%}
            {{ exceptions.raise_compiler_error("var sla_policies: two policies are named " ~ name) }}
        {%- endif -%}
        {%- do names.append(name) -%}
        {%- for key in policy if key not in known -%}
            {{ exceptions.raise_compiler_error("var sla_policies." ~ name ~ ": unknown field " ~ key ~ " (known: " ~ known | join(', ') ~ ")") }}
        {%- endfor -%}
        {%- set in_business_hours = policy.get('in_business_hours', false) -%}
        {%- if in_business_hours not in [true, false] -%}
            {{ exceptions.raise_compiler_error("var sla_policies." ~ name ~ ".in_business_hours must be true or false, got " ~ in_business_hours) }}
        {%- endif -%}
        {%- set inbox_ids = policy.get('inbox_ids') or [] -%}
        {%- if inbox_ids is string or inbox_ids is mapping -%}
            {{ exceptions.raise_compiler_error("var sla_policies." ~ name ~ ".inbox_ids must be a list of inbox ids") }}
        {%- endif -%}
        {%- for inbox_id in inbox_ids if inbox_id is not number or inbox_id is float -%}
            {{ exceptions.raise_compiler_error("var sla_policies." ~ name ~ ".inbox_ids: expected whole numbers, got " ~ inbox_id) }}
        {%- endfor -%}
        {%- set targets = [] -%}
        {%- for metric in ['first_reply', 'next_reply'] -%}
            {%- set target = policy.get(metric ~ '_seconds') -%}
            {%- if target is not none -%}
                {%- if target is not number or target <= 0 -%}
                    {{ exceptions.raise_compiler_error("var sla_policies." ~ name ~ "." ~ metric ~ "_seconds must be a number of seconds above 0, got " ~ target) }}
                {%- endif -%}
                {%- do targets.append((metric, target)) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not targets -%}
            {{ exceptions.raise_compiler_error("var sla_policies." ~ name ~ ": set first_reply_seconds, next_reply_seconds or both") }}
        {%- endif -%}
        {%- for metric, target in targets -%}
            {%- for inbox_id in (inbox_ids or [none]) -%}
                {%- do rows.append({'name': name, 'inbox_id': inbox_id, 'metric': metric,
                                    'target': target, 'in_business_hours': in_business_hours}) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}


{# SQL: one row per (policy, metric, inbox); inbox_id null applies to every inbox. #}
{% macro drift_sla_policies_sql() -%}
    {%- for row in drift_sla_policy_rows() %}
    select
        cast('{{ row.name }}' as {{ dbt.type_string() }}) as sla_policy,
        cast({{ 'null' if row.inbox_id is none else row.inbox_id }} as bigint) as inbox_id,
        cast('{{ row.metric }}' as {{ dbt.type_string() }}) as metric,
        cast({{ row.target }} as {{ drift_type_double() }}) as target_seconds,
        {{ 'true' if row.in_business_hours else 'false' }} as in_business_hours
    union all
    {%- endfor %}
    {{ drift_empty_row([('sla_policy', dbt.type_string()), ('inbox_id', 'bigint'), ('metric', dbt.type_string()),
                        ('target_seconds', drift_type_double()), ('in_business_hours', 'boolean')]) }}
{%- endmacro %}


{# The instant SLAs are measured at: var sla_as_of ("YYYY-MM-DD HH:MM:SS", UTC), else the run's start. #}
{% macro drift_sla_as_of() -%}
    {%- set as_of = var('sla_as_of', none) -%}
    {%- if as_of is none -%}
        {{ return(drift_run_started_at()) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$', as_of | string) -%}
        {{ exceptions.raise_compiler_error("var sla_as_of: expected \"YYYY-MM-DD HH:MM:SS\" (UTC), got " ~ as_of) }}
    {%- endif -%}
    {{ return("cast('" ~ as_of ~ "' as timestamp)") }}
{%- endmacro %}


{#- A digest of what every SLA row depends on besides its conversation's data: the policies and
    the business-hours schedule. fct_sla_events stores it (`_sla_version`); a run that sees
    another one measures every conversation again. -#}
{% macro drift_sla_version() -%}
    {{ return(local_md5(tojson(drift_sla_policy_rows()) ~ drift_business_hours_version())[:16]) }}
{%- endmacro %}


{#- SQL true when fct_sla_events (`this`) holds rows built under other policies or another
    schedule than the configured ones. Read only on a table with the bookkeeping columns (not
    drift_sla_built_whole): the pre-hook and drift_conversations_to_rebuild skip it otherwise. -#}
{% macro drift_sla_changed() -%}
    {{ return(drift_version_changed('_sla_version', drift_sla_version())) }}
{%- endmacro %}


{#- True when fct_sla_events (`this`) lacks a column its yml documents: a table an older version
    rebuilt whole every run, without the bookkeeping an incremental run reads (or built before
    any later column). The next run clears it and builds every row again, which is what
    drift_documented_columns_missing makes every other incremental model do. -#}
{% macro drift_sla_built_whole() -%}
    {{ return(drift_documented_columns_missing() == 'true') }}
{%- endmacro %}


{#- fct_sla_events' pre-hook: the rows of the conversations it rebuilds and of those that left
    raw (drift_clear_conversations_to_rebuild); every row of a table built whole before. -#}
{% macro drift_clear_sla_conversations_to_rebuild() -%}
    {%- if is_incremental() and drift_sla_built_whole() -%}
    delete from {{ this }}
    {%- else -%}
    {{ drift_clear_conversations_to_rebuild(drift_sla_changed()) }}
    {%- endif -%}
{%- endmacro %}
