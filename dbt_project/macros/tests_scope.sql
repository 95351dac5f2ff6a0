{#-
  Data tests that cost what changed (DECISIONLOG "Tests on what changed").

  With `--vars '{drift_tests_scope: changed}'` (what the scheduled runs pass), a data test on a
  per-conversation model (one whose documented columns include `conversation_id`: the staging
  views of conversations, messages, status and widget events, every intermediate model and
  fct_conversations) reads only the rows of the conversations this run rebuilds: those whose
  watermark (`int_drift__conversation_watermarks`; for the staging views, tested before the
  watermarks move, their own load stamps) is newer than the oldest "newest watermark" any
  per-conversation incremental model held when the run started, or that have unstamped rows. That is a superset of what each incremental model rebuilds (each rebuilds the
  conversations newer than its own newest watermark), so a model that lagged behind after a
  failed run still has its rebuilt rows tested. Keys of these models include conversation_id,
  so a duplicate always falls inside one conversation and the scoped unique tests see it.

  Not scoped: the small per-day aggregates and users (tested whole every run), and any run
  with `--full-refresh` or without the var (`make test`, CI, `sync --full-tests`).
  Not covered by the scoped tests: rows of conversations that did not change (they passed
  when they were built) and orphan staging rows without a conversation (the raw asset checks
  count those on every run).
-#}

{% macro drift_tests_scoped() -%}
    {{ return(var('drift_tests_scope', 'all') == 'changed' and not flags.FULL_REFRESH) }}
{%- endmacro %}


{# The table on-run-start writes the scope's lower bound into (one row: changed_after). #}
{% macro drift_tests_scope_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='drift_tests_scope')) }}
{%- endmacro %}


{#- The per-conversation incremental models (keyed by org_id, conversation_id) and the column
    holding the watermark each was built from. fct_sla_events, keyed per turn and policy, is left
    out: a table an older version built whole has no watermark column, which this hook would
    read before the model adds it. It rebuilds from the same watermarks in the same run. -#}
{% macro drift_watermarked_models() -%}
    {%- set models = [] -%}
    {%- for node in graph.nodes.values()
            if node.resource_type == 'model'
            and node.config.materialized == 'incremental'
            and (node.config.unique_key or []) | list == ['org_id', 'conversation_id'] -%}
        {%- set column = 'source_synced_at' if node.name == 'int_drift__conversation_watermarks' else '_source_synced_at' -%}
        {%- do models.append({'node': node, 'column': column}) -%}
    {%- endfor -%}
    {{ return(models) }}
{%- endmacro %}


{#-
  on-run-start: record where "changed" starts for this run, before any model moves its
  watermark. A model that does not exist yet (first build) puts everything in scope; an empty
  one (no widget events at all) has no old rows and does not move the bound.
  `dbt test` alone keeps the bound the last `dbt run` recorded, so a run then a test (the
  split form of `dbt build`) tests what that run rebuilt.
-#}
{% macro drift_record_tests_scope() -%}
    {%- if not execute or not drift_tests_scoped() -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set scope = drift_tests_scope_relation() -%}
    {%- if flags.WHICH not in ('run', 'build')
            and adapter.get_relation(scope.database, scope.schema, scope.identifier) is not none -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set lookback_minutes = var('incremental_lookback_minutes', 0) | int -%}
    {%- set newest = [] -%}
    {%- for model in drift_watermarked_models() -%}
        {%- set relation = adapter.get_relation(model.node.database, model.node.schema, model.node.alias) -%}
        {%- if relation is none -%}
            {%- do newest.append("cast('1900-01-01' as timestamp)") -%}
        {%- else -%}
            {%- do newest.append("(select max(" ~ model.column ~ ") from " ~ relation ~ ")") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do adapter.create_schema(scope) -%}
    {#- drop + create: Postgres has no `create or replace table`. -#}
    drop table if exists {{ scope }};
    create table {{ scope }} as
    select {{ dbt.dateadd('minute', -1 * lookback_minutes,
                          'coalesce(min(newest), cast(\'1900-01-01\' as timestamp))') }}
               as changed_after
    from (
        {%- for expression in newest %}
        select {{ expression }} as newest{% if not loop.last %} union all{% endif %}
        {%- endfor %}
    ) as per_model
{%- endmacro %}


{#-
  SQL condition on `tested` (the tested model's rows) for a scoped test, or '' when unscoped.
  Staging views are tested before this run rebuilds the watermarks, so their scope is their
  own load stamps: conversations with a row loaded after the bound (or unstamped). Models
  downstream of the watermarks are tested after them: conversations whose watermark moved.
-#}
{% macro drift_tests_scope_condition(relation) -%}
    {%- if not execute or not drift_tests_scoped() or relation is string -%}
        {{ return('') }}
    {%- endif -%}
    {%- set tested = [] -%}
    {%- set watermarks = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
        {#- A model keyed by something else (a meeting's slug), whose rows may name no conversation,
            opts out with meta drift_tests_scope: whole and is tested whole. -#}
        {%- if node.alias == relation.identifier and node.schema == relation.schema and 'conversation_id' in node.columns
                and (node.config.meta or {}).get('drift_tests_scope') != 'whole' -%}
            {%- do tested.append(node) -%}
        {%- endif -%}
        {%- if node.name == 'int_drift__conversation_watermarks' -%}
            {%- do watermarks.append(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not tested or not watermarks -%}
        {{ return('') }}
    {%- endif -%}
    {#- Nothing built before this run (a first build): every row is in scope, skip the filter. -#}
    {%- set bound = run_query("select cast(changed_after as varchar) from " ~ drift_tests_scope_relation()).columns[0].values()[0] -%}
    {%- if bound is none or bound.startswith('1900-01-01') -%}
        {{ return('') }}
    {%- endif -%}
    {%- if 'staging' in tested[0].fqn -%}
        {%- set loaded_at = 'recorded_at' if 'recorded_at' in tested[0].columns else 'synced_at' -%}
        {%- set condition -%}
    exists (
        select 1
        from {{ relation }} as drift_loaded
        where drift_loaded.org_id = tested.org_id
            and drift_loaded.conversation_id = tested.conversation_id
            and (drift_loaded.{{ loaded_at }} > cast('{{ bound }}' as timestamp) or drift_loaded.{{ loaded_at }} is null)
    )
        {%- endset -%}
    {%- else -%}
        {%- set condition -%}
    exists (
        select 1
        from {{ watermarks[0] }} as drift_changed
        where drift_changed.org_id = tested.org_id
            and drift_changed.conversation_id = tested.conversation_id
            and (drift_changed.source_synced_at > cast('{{ bound }}' as timestamp) or drift_changed.has_unstamped_rows)
    )
        {%- endset -%}
    {%- endif -%}
    {{ return(condition) }}
{%- endmacro %}


{#-
  dbt's hook for a test's `where` config, overridden to add the changed-conversations scope.
  Same shape as dbt's default: the tested relation, or a filtered subquery aliased dbt_subquery.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set scope = drift_tests_scope_condition(relation) -%}
    {%- if scope -%}
        {%- do conditions.append(scope) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} as tested where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
