"""The table of contents: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from drift_pipeline.assets.dbt import build_dbt_models, publish_dbt_docs_of_models
from drift_pipeline.assets.serving import build_serving_assets
from drift_pipeline.assets.drift_raw import build_drift_raw_sync, raw_asset_checks
from drift_pipeline.assets.drift_reports import drift_report_checks
from drift_pipeline.assets.drift_streams import drift_streams, stream_asset_checks
from drift_pipeline.assets.webhooks import webhook_inbox
from drift_pipeline.dbt_project import dbt_cli
from drift_pipeline.partitions import daily_partitions
from drift_pipeline.resources import DriftApiResource, warehouse_resource
from drift_pipeline.schedules import build_sync_job, schedules
from drift_pipeline.sensors import apply_webhooks_job, webhook_inbox_sensor
from drift_pipeline.settings import Settings


def build_definitions(settings: Settings | None = None) -> Definitions:
    """The definitions for `settings` (tests, a CLI run: plain values), or by default for the
    environment: the resources then read each DRIFT_* variable when a step runs (`EnvVar`),
    and the partitions start on the inherited DRIFT_HISTORY_START, which every Dagster process
    of one deployment shares. Either way every secret is an `EnvVar` (`SECRET_FIELDS`): the UI
    and the run storage show its variable's name, never its value. Builds objects only:
    nothing is created or written."""
    drift = DriftApiResource.for_settings(settings) if settings else DriftApiResource.from_env()
    settings = settings or Settings.from_env()
    partitions = daily_partitions(settings.history_start)
    dbt_models = build_dbt_models()
    return Definitions(
        assets=[build_drift_raw_sync(partitions), drift_streams, webhook_inbox, dbt_models,
                *build_serving_assets(dbt_models, publish_dbt_docs_of_models)],
        asset_checks=[*raw_asset_checks, *stream_asset_checks, *drift_report_checks],
        jobs=[build_sync_job(partitions), apply_webhooks_job],
        schedules=schedules,
        sensors=[webhook_inbox_sensor],
        # Steps run one after another in the run's process: DuckDB allows one writer, and a
        # parallel asset-check step would hold the file while dbt needs it.
        executor=in_process_executor,
        resources={
            "drift": drift,
            "duckdb": warehouse_resource(settings),
            "dbt": dbt_cli(),
        },
    )


# What `defs` was built from: callers whose environment changed since import (the demo points
# DRIFT_PIPELINE_HOME at its own home after importing) compare against this, not the env now.
DEFS_SETTINGS = Settings.from_env()
defs = build_definitions()
