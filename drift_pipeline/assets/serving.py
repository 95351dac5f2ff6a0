"""What analysts open, as assets downstream of the marts: the serving copy, the report and the
dbt docs. Every path that changes the marts (a sync, the webhook job, the CLI's apply-inbox,
replay and erase) materializes them through Dagster, so the UI shows when each was last made."""


import time

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from dagster_dbt import DbtCliResource

from drift_pipeline.fsutil import append_json_line
from drift_pipeline.marts import publish_timing_record
from drift_pipeline.partitions import single_run
from drift_pipeline.report.page import REPORT_FILENAME, headline_charts_markdown, write_report
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.serving import DBT_DOCS_DIR, SERVING_DB, headline_metrics, publish, serving_table_counts
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.webhooks.apply import TIMINGS_LOG

SERVING_GROUP = "drift_serving"
SERVING_COPY_KEY = AssetKey(["serving", "analytics"])
REPORT_KEY = AssetKey(["serving", "report"])
DBT_DOCS_KEY = AssetKey(["serving", "dbt_docs"])


def _warehouse_counts(settings, tables) -> dict[str, int]:
    with open_warehouse(settings) as conn:
        return {name: conn.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0] for name in tables}


def _serving_asset(key: AssetKey, deps, description: str, check_name: str, check_description: str):
    """One serving asset with its one check. A one-spec multi-asset: @asset flags
    backfill_policy as beta with a warning on every import, and Dagster's CLI takes a
    --partition-range only over assets that all have it."""
    return multi_asset(specs=[AssetSpec(key, deps=deps, group_name=SERVING_GROUP, description=description)],
                       backfill_policy=single_run, name="__".join(key.path),
                       check_specs=[AssetCheckSpec(check_name, asset=key, description=check_description)])


def build_serving_assets(dbt_assets_def, publish_dbt_docs) -> list:
    """The serving copy (after every mart), the report (from the copy) and the dbt docs (after
    every model). `publish_dbt_docs(context, dbt, settings)` generates and publishes the docs."""
    marts = sorted((key for key in dbt_assets_def.keys if key.path[0] == "marts"), key=lambda k: k.path)
    models = sorted(dbt_assets_def.keys, key=lambda k: k.path)

    @_serving_asset(SERVING_COPY_KEY, marts,
                    "serving/analytics.duckdb and serving/parquet/: the marts for analysts and BI tools, "
                    "replaced atomically (a reader never blocks the pipeline).",
                    "serving_copy_matches_marts", "Every mart is in the serving copy with the warehouse's row count.")
    def serving_analytics(context: AssetExecutionContext, drift: DriftApiResource):
        settings = drift.settings()
        started = time.time()
        result = publish(settings, report=False)
        finished = time.time()
        append_json_line(settings.home / TIMINGS_LOG,
                         publish_timing_record(context.run.run_id, started, finished))
        published = serving_table_counts(settings)
        expected = _warehouse_counts(settings, published) if not settings.warehouse_on_postgres else result["tables"]
        differing = {name: (expected.get(name), rows) for name, rows in published.items() if expected.get(name) != rows}
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(result["path"]),
                **{f"rows {name}": MetadataValue.int(rows) for name, rows in result["tables"].items()},
                "parquet_written": MetadataValue.int(len(result["parquet_written"])),
                "publish_seconds": MetadataValue.float(round(finished - started, 3)),
                "latest days": MetadataValue.md(_metrics_markdown(headline_metrics(settings)[-7:])),
            },
            check_results=[AssetCheckResult(
                check_name="serving_copy_matches_marts", passed=not differing and bool(published),
                metadata={"tables": MetadataValue.int(len(published)),
                          "differing": MetadataValue.json({k: list(v) for k, v in differing.items()})})],
        )

    @_serving_asset(REPORT_KEY, [SERVING_COPY_KEY],
                    "serving/report.html: the marts' charts in one offline file, drawn from the serving copy.",
                    "report_has_charts", "The report was written and draws at least one chart.")
    def serving_report(context: AssetExecutionContext, drift: DriftApiResource):
        settings = drift.settings()
        serving_db = settings.serving_dir / SERVING_DB
        report = write_report(settings, serving_db, settings.serving_dir / REPORT_FILENAME)
        return MaterializeResult(
            metadata={"path": MetadataValue.path(report["path"]), "bytes": MetadataValue.int(report["bytes"]),
                      "charts": MetadataValue.int(report["charts"]),
                      "headline charts and playbook funnel": MetadataValue.md(headline_charts_markdown(settings, serving_db))},
            check_results=[AssetCheckResult(check_name="report_has_charts", passed=report["charts"] > 0,
                                            metadata={"charts": MetadataValue.int(report["charts"])})],
        )

    @_serving_asset(DBT_DOCS_KEY, models,
                    "serving/dbt-docs/: dbt's documentation site of the models (regenerated when the project, "
                    "its sources or dbt changed).",
                    "dbt_docs_complete", "index.html, manifest.json and catalog.json are published.")
    def serving_dbt_docs(context: AssetExecutionContext, dbt: DbtCliResource, drift: DriftApiResource):
        settings = drift.settings()
        folder = publish_dbt_docs(context, dbt, settings)
        folder = folder or settings.serving_dir / DBT_DOCS_DIR
        present = sorted(name for name in ("index.html", "manifest.json", "catalog.json") if (folder / name).exists())
        return MaterializeResult(
            metadata={"path": MetadataValue.path(str(folder / "index.html"))},
            check_results=[AssetCheckResult(check_name="dbt_docs_complete", passed=len(present) == 3,
                                            metadata={"files": MetadataValue.text(", ".join(present) or "none")})],
        )

    return [serving_analytics, serving_report, serving_dbt_docs]


def _metrics_markdown(rows) -> str:
    header = "| day | conversations | FRT p50 min | FRT p90 min | handoff % | open->close p50 h |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
