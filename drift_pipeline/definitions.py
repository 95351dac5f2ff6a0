"""The table of contents: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

from dagster import Definitions, in_process_executor
from dagster_dbt import DbtCliResource

from drift_pipeline.assets.dbt import drift_dbt_models
from drift_pipeline.assets.drift_raw import drift_raw_sync, raw_asset_checks
from drift_pipeline.dbt_project import dbt_project
from drift_pipeline.resources import DriftApiResource, warehouse_resource
from drift_pipeline.schedules import drift_sync_job, schedules
from drift_pipeline.sensors import apply_webhooks_job, webhook_inbox_sensor


def build_definitions() -> Definitions:
    return Definitions(
        assets=[drift_raw_sync, drift_dbt_models],
        asset_checks=raw_asset_checks,
        jobs=[drift_sync_job, apply_webhooks_job],
        schedules=schedules,
        sensors=[webhook_inbox_sensor],
        # Steps run one after another in the run's process: DuckDB allows one writer, and a
        # parallel asset-check step would hold the file while dbt needs it.
        executor=in_process_executor,
        resources={
            "drift": DriftApiResource(),
            "duckdb": warehouse_resource(),
            "dbt": DbtCliResource(project_dir=dbt_project),
        },
    )


defs = build_definitions()
