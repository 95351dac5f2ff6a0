"""Runs assets through Dagster from the CLI: a range of days is one run, and every marts refresh
a CLI command needs (apply-inbox, replay, erase, retention), and `publish`, is a run of the same
dbt and serving assets the webhook job runs, recorded in the instance, so the UI shows it."""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

from dagster import AssetSelection, materialize

from drift_pipeline import definitions
from drift_pipeline.adapters import dbt_reported_errors
from drift_pipeline.assets.dbt import DBT_ASSET_OP, MARTS_GROUP, MODELS_GROUP, REFRESH_CONFIG
from drift_pipeline.assets.drift_raw import RAW_GROUP
from drift_pipeline.assets.serving import REPORT_KEY, SERVING_COPY_KEY
from drift_pipeline.instance import open_instance
from drift_pipeline.marts import dbt_output_to_file
from drift_pipeline.partitions import FULL_WINDOW_TAG, ORG_TAG, check_day_range
from drift_pipeline.schedules import SYNC_SELECTION
from drift_pipeline.serving import require_warehouse
from drift_pipeline.settings import Settings, UsageError
from drift_pipeline.webhooks.apply import apply_inbox


class RunFailed(RuntimeError):
    pass


def _root_cause(error) -> str:
    """The innermost error of Dagster's wrapped chain, as one line (`Class: message`); for a
    dbt failure, the first model or test dbt reported (`dbt failed: ...`)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    text = (error.message or "").strip()
    reported = dbt_reported_errors(text)
    if reported:
        return f"dbt failed: {reported[0]}"
    message = text.splitlines()
    return message[0] if message else error.cls_name or "unknown error"


def materialize_days(settings: Settings, start: date, end: date, *, with_dbt: bool = True,
                     full_window: bool = False, org_id: int | None = None, full_refresh: bool = False,
                     full_tests: bool = False, log_level: str = "CRITICAL"):
    """Materialize the raw assets (and the dbt models) for the daily partitions in [start, end),
    however many, in one run: every connected Drift org, or only `org_id`. A range outside the
    partitions raises `PartitionRangeError`. `full_refresh` / `full_tests` are the dbt asset's
    run config (DbtModelsConfig)."""
    check_day_range(settings.history_start, start, end)
    if (full_refresh or full_tests) and not with_dbt:
        raise UsageError("--full-refresh and --full-tests apply to dbt: drop --no-dbt")
    last = end - timedelta(days=1)
    # The raw assets with their checks (duplicate keys, orphans, freshness), and the dbt models
    # with theirs unless --no-dbt: a CLI sync checks what a scheduled run checks.
    selection = SYNC_SELECTION if with_dbt else AssetSelection.groups(RAW_GROUP)
    tags = {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
        "drift/trigger": "cli",
    }
    if full_window:
        tags[FULL_WINDOW_TAG] = "true"
    if org_id is not None:
        tags[ORG_TAG] = str(org_id)
    dbt_config = {"full_refresh": full_refresh, "full_tests": full_tests} if with_dbt else None
    return _materialize(settings, selection, tags, dbt_config, "last_sync", log_level)


def _materialize(settings: Settings, selection, tags: dict, dbt_config: dict | None, log_name: str,
                 log_level: str):
    """One in-process Dagster run of `selection` (the dbt asset with `dbt_config`), recorded in
    the home's instance; dbt's own output goes to `logs/<log_name>.log` unless asked for (-v):
    the run's events are in Dagster. Raises `RunFailed` naming the step and its root cause."""
    # The module's definitions were built from the environment; build again only for others.
    defs = definitions.defs if settings == definitions.DEFS_SETTINGS else definitions.build_definitions(settings)
    assets = list(defs.assets) + list(defs.asset_checks or [])
    quiet = log_level not in ("DEBUG", "INFO")
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if dbt_config is not None:
        run_config["ops"] = {DBT_ASSET_OP: {"config": dbt_config}}
    with open_instance(settings) as instance, \
            (dbt_output_to_file(settings, log_name) if quiet else contextlib.nullcontext()):
        result = materialize(assets, instance=instance, resources=defs.resources, tags=tags, selection=selection,
                             raise_on_error=False, run_config=run_config)
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        reason = _root_cause(failure.step_failure_data.error) if failure else "see the Dagster run"
        raise RunFailed(f"run {result.run_id} failed in {failure.step_key if failure else '?'}: {reason}")
    return result


# The models in refresh mode (the changed rows, no tests), then the serving copy and report.
REFRESH_SELECTION = AssetSelection.groups(MODELS_GROUP, MARTS_GROUP).without_checks() \
    | AssetSelection.assets(SERVING_COPY_KEY, REPORT_KEY)


def refresh_marts(settings: Settings, *, reason: str = "cli", log_level: str = "CRITICAL"):
    """Refresh the marts' affected rows and republish, as one Dagster run in this process: the
    only way the marts are built outside a sync (the webhook sensor launches the same assets).
    Raises `RunFailed` naming the step and dbt's first error."""
    return _materialize(settings, REFRESH_SELECTION, {"drift/trigger": reason}, dict(REFRESH_CONFIG),
                        "last_marts_refresh", log_level)


def publish_serving(settings: Settings, *, log_level: str = "CRITICAL"):
    """`drift-pipeline publish`: the serving copy and the report, as one Dagster run of their
    assets, recorded in the instance like every other publish (the UI shows who published what,
    and the copy's check runs). Without a warehouse: PublishError, before Dagster starts."""
    require_warehouse(settings)
    return _materialize(settings, AssetSelection.assets(SERVING_COPY_KEY, REPORT_KEY), {"drift/trigger": "publish"},
                        None, "last_publish", log_level)


def apply_inbox_and_refresh(settings: Settings, files: list[str] | None = None) -> dict:
    """`drift-pipeline apply-inbox`: apply the waiting webhook files, then refresh the marts
    and the serving copy (a Dagster run) when the events touched them."""
    result = apply_inbox(settings, files)
    if result.marts_affected:
        refresh_marts(settings, reason="apply-inbox")
    return result.as_dict()
