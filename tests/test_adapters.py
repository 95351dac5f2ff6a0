"""What drift_pipeline/adapters.py relies on in the pinned libraries' internals. Each test
names the hook it guards: when one fails after an upgrade, the hook has to be re-measured and
rewritten or removed, not patched around."""

from __future__ import annotations

import inspect

import dagster_dbt
import pytest
from dagster_dbt import DbtCliResource


def _explain(hook: str, what: str) -> str:
    return (f"{hook} in drift_pipeline/adapters.py relies on {what}, which the installed "
            f"dagster / dagster-dbt ({dagster_dbt.__version__}) no longer has: re-measure the hook "
            "and rewrite or remove it")


def test_the_batched_event_log_overrides_methods_dagsters_sqlite_storage_still_has():
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from drift_pipeline.adapters import BatchedSqliteEventLogStorage

    for name in ("store_event_batch", "run_connection", "index_transaction", "prepare_insert_event",
                 "prepare_insert_event_batch", "_store_asset_event_tags", "_store_asset_event",
                 "_store_asset_check_evaluation_planned"):
        assert callable(getattr(SqliteEventLogStorage, name, None)), _explain(
            "BatchedSqliteEventLogStorage", f"SqliteEventLogStorage.{name}")
    assert list(inspect.signature(SqliteEventLogStorage._store_asset_check_evaluation_planned).parameters) == [
        "self", "event", "event_id"], _explain("BatchedSqliteEventLogStorage",
                                               "_store_asset_check_evaluation_planned(event, event_id)")
    assert issubclass(BatchedSqliteEventLogStorage, SqliteEventLogStorage)


def test_dbt_cli_overrides_the_two_private_hooks_dagster_dbt_calls():
    from drift_pipeline.adapters import DbtCli

    assert "_cli_version" in vars(DbtCliResource) or hasattr(DbtCliResource, "_cli_version"), _explain(
        "DbtCli", "DbtCliResource._cli_version")
    assert callable(getattr(DbtCliResource, "_initialize_dbt_core_adapter", None)), _explain(
        "DbtCli", "DbtCliResource._initialize_dbt_core_adapter")
    source = inspect.getsource(dagster_dbt.core.resource)
    assert "self._cli_version" in source and "_initialize_dbt_core_adapter(" in source, _explain(
        "DbtCli", "DbtCliResource.cli() calling _cli_version and _initialize_dbt_core_adapter")
    # What the override answers: the installed dbt-core, without starting `dbt --version`.
    from importlib.metadata import version

    from drift_pipeline.dbt_project import dbt_cli

    assert isinstance(dbt_cli(), DbtCli) and str(dbt_cli()._cli_version) == version("dbt-core")


def test_dbt_events_to_dagster_calls_dagster_dbts_event_class_as_it_is():
    from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

    parameters = set(inspect.signature(DbtCoreCliEventMessage.to_default_asset_events).parameters)
    assert {"manifest", "dagster_dbt_translator", "context", "target_path", "project"} <= parameters, _explain(
        "dbt_events_to_dagster", "DbtCoreCliEventMessage.to_default_asset_events(manifest, "
        "dagster_dbt_translator, context, target_path, project)")
    assert {"raw_event", "event_history_metadata"} <= set(inspect.signature(DbtCoreCliEventMessage).parameters)


def test_dbt_reported_errors_reads_the_marker_dagster_dbt_writes():
    from drift_pipeline.adapters import DBT_ERRORS_MARKER, dbt_reported_errors

    assert DBT_ERRORS_MARKER in inspect.getsource(dagster_dbt.core.dbt_cli_invocation), _explain(
        "dbt_reported_errors", f"the text {DBT_ERRORS_MARKER!r} in its failed-invocation error")
    text = f"The dbt CLI process failed.\n\n{DBT_ERRORS_MARKER}\n\n  Failure in test unique_x (models/x.yml)\n  2 rows\n"
    assert dbt_reported_errors(text) == ["Failure in test unique_x (models/x.yml)", "2 rows"]
    assert dbt_reported_errors("no marker here") == []


@pytest.mark.parametrize("module", ["drift_pipeline.instance", "drift_pipeline.adapters"])
def test_a_home_written_before_the_move_still_finds_the_event_log_class(module):
    import importlib

    assert importlib.import_module(module).BatchedSqliteEventLogStorage.__name__ == "BatchedSqliteEventLogStorage"


# ---------------------------------------------------------------- dbt macros the project overrides

DBT_PROJECT = __import__("pathlib").Path(__file__).resolve().parents[1] / "dbt_project"


def _macro(text: str, name: str) -> tuple[str, str] | None:
    """The argument list and body of `{% macro name(...) %}` in a dbt macro file, or None."""
    import re

    found = re.search(r"\{%-?\s*macro\s+" + re.escape(name) + r"\s*\(([^)]*)\)\s*-?%\}(.*?)\{%-?\s*endmacro\s*-?%\}",
                      text, re.S)
    return None if found is None else (" ".join(found.group(1).split()), " ".join(found.group(2).split()))


def test_the_where_subquery_override_still_replaces_the_macro_dbt_wraps_every_generic_test_in():
    """macros/tests_scope.sql overrides dbt's global `get_where_subquery` (dbt's documented way to
    put custom logic behind the `where` test config, which itself cannot call macros) to scope
    scheduled runs' data tests to the conversations they rebuilt. It relies on three things of
    the installed dbt-core: the macro's name and argument, the generic test builder wrapping
    each tested relation in it, and the default it re-implements (where config -> a subquery
    aliased dbt_subquery). A change to any of them means the override must be revisited."""
    from importlib.metadata import version
    from pathlib import Path

    import dbt.include.global_project as global_project
    import dbt.parser.generic_test_builders as builders

    def explain(what: str) -> str:
        return (f"dbt_project/macros/tests_scope.sql overrides get_where_subquery and relies on {what}, "
                f"which the installed dbt-core ({version('dbt-core')}) no longer has: revisit the override "
                "(DECISIONLOG 'Supported dbt APIs')")

    installed = (Path(global_project.PACKAGE_PATH) / "macros" / "materializations" / "tests" / "where_subquery.sql")
    assert installed.is_file(), explain(f"the file {installed.relative_to(global_project.PACKAGE_PATH)}")
    text = installed.read_text()
    assert _macro(text, "get_where_subquery") == (
        "relation", "{% do return(adapter.dispatch('get_where_subquery', 'dbt')(relation)) %}"), explain(
        "get_where_subquery(relation) dispatching to default__get_where_subquery")
    assert _macro(text, "default__get_where_subquery") == ("relation", " ".join("""
        {% set where = config.get('where', '') %}
        {% if where %}
            {%- set filtered -%}
                (select * from {{ relation }} where {{ where }}) dbt_subquery
            {%- endset -%}
            {% do return(filtered) %}
        {%- else -%}
            {% do return(relation) %}
        {%- endif -%}""".split())), explain("default__get_where_subquery's body (the where config as a subquery "
                                            "aliased dbt_subquery, else the relation)")
    assert "get_where_subquery(" in inspect.getsource(builders.TestBuilder.build_model_str), explain(
        "generic tests' model argument being {{ get_where_subquery(ref(...)) }}")

    ours = _macro((DBT_PROJECT / "macros" / "tests_scope.sql").read_text(), "get_where_subquery")
    assert ours is not None and ours[0] == "relation"
    assert "config.get('where', '')" in ours[1] and ") dbt_subquery" in ours[1]
