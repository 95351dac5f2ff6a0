"""dbt models as Dagster assets: downstream of the raw assets, tests as asset checks."""


import os
from typing import Any, Mapping, Optional

from dagster import AssetExecutionContext, AssetKey, AssetObservation, MetadataValue, PartitionsDefinition
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from drift_pipeline.dbt_project import dbt_project, dbt_run_dir, ensure_manifest
from drift_pipeline.partitions import single_run
from drift_pipeline.settings import Settings

MARTS_GROUP = "drift_marts"
MODELS_GROUP = "drift_models"


class DriftDbtTranslator(DagsterDbtTranslator):
    """Marts in `drift_marts`, staging and intermediate in `drift_models`, owned by the data team."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> Optional[str]:
        fqn = dbt_resource_props.get("fqn") or []
        return MARTS_GROUP if "marts" in fqn else MODELS_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return ["team:analytics-engineering"]


def build_dbt_models(partitions_def: PartitionsDefinition):
    """The dbt models as one partitioned, single-run asset set (same days as the raw assets)."""

    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project,
        partitions_def=partitions_def,
        backfill_policy=single_run,
        dagster_dbt_translator=DriftDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    )
    def drift_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
        """Build the dbt models and run their data tests (unit tests run in CI, not every run),
        then republish the serving copy so analysts see the new numbers."""
        settings = Settings.from_env()
        os.environ["DRIFT_PIPELINE_HOME"] = str(settings.home)  # the dbt profile reads it
        yield from dbt.cli(["build", "--exclude-resource-type", "unit_test"], context=context,
                           target_path=dbt_run_dir(settings, context.run.run_id[:8])).stream()
        if context.selected_output_names:
            from drift_pipeline.serving import headline_metrics, publish

            result = publish(settings)
            context.log.info(f"published serving copy: {result['tables']}")
            context.log_event(AssetObservation(
                asset_key=AssetKey(["marts", "agg_daily_metrics"]),
                description="Published to the serving copy",
                metadata={
                    "serving_copy": MetadataValue.path(result["path"]),
                    **{f"rows {name}": MetadataValue.int(rows) for name, rows in result["tables"].items()},
                    "latest days": MetadataValue.md(_metrics_markdown(headline_metrics(settings)[-7:])),
                },
            ))

    return drift_dbt_models


def _metrics_markdown(rows) -> str:
    header = "| day | conversations | FRT p50 min | FRT p90 min | handoff % | open->close p50 h |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
