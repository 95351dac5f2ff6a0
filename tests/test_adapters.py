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
