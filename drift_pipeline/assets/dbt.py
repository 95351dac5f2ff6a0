"""dbt models as Dagster assets: downstream of the raw assets, tests as asset checks."""


import json
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from dagster import AssetExecutionContext, AssetSpec, Config, Failure, MetadataValue
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from drift_pipeline.adapters import dbt_events_to_dagster
from drift_pipeline.assets.webhooks import WEBHOOK_EVENTS_KEY, WEBHOOK_FED_SOURCES
from drift_pipeline.dbt_project import (
    dbt_project,
    dbt_run_dir,
    dbt_vars,
    docs_fingerprint,
    ensure_manifest,
    run_dbt_in_process,
)
from drift_pipeline.fsutil import append_json_line, atomic_write_text
from drift_pipeline.partitions import single_run
from drift_pipeline.marts import EXCLUDE_VIEWS, record_views_created, timing_record, views_current
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.serving import DBT_DOCS_DIR, publish_dbt_docs
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import exclusive_build
from drift_pipeline.webhooks.apply import TIMINGS_LOG

DBT_ASSET_OP = "drift_dbt_models"  # the op name run config addresses (`ops: {drift_dbt_models: ...}`)
DOCS_FINGERPRINT = "dbt_docs.fingerprint"  # under state/: what the published dbt docs were made from
MARTS_GROUP = "drift_marts"
MODELS_GROUP = "drift_models"


class DriftDbtTranslator(DagsterDbtTranslator):
    """Marts in `drift_marts`, staging and intermediate in `drift_models`, owned by the data team."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> Optional[str]:
        fqn = dbt_resource_props.get("fqn") or []
        return MARTS_GROUP if "marts" in fqn else MODELS_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return ["team:analytics-engineering"]

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> AssetSpec:
        """A model reading a raw table the webhook apply also writes is downstream of the
        webhook events too, so a run of both orders them and the lineage shows both writers."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        upstream = self.get_resource_props(manifest, unique_id).get("depends_on", {}).get("nodes", [])
        if any(node == f"source.drift_pipeline.drift.{table}" for node in upstream for table in WEBHOOK_FED_SOURCES):
            spec = spec.merge_attributes(deps=[WEBHOOK_EVENTS_KEY])
        return spec


class DbtModelsConfig(Config):
    """How a run builds the models. A scheduled or CLI sync builds and tests them; the webhook
    job (and the CLI's apply-inbox, replay, erase) refreshes the rows that changed,
    seconds-sensitive. Publishing is the serving assets' job (assets/serving.py).

    By default the data tests read only the conversations the run rebuilt (`drift_tests_scope:
    changed`, dbt_project/macros/tests_scope.sql), so a nightly run costs what changed, not what
    the warehouse holds; `full_tests` and `full_refresh` are the full path (the UI's launchpad,
    `sync --full-tests / --full-refresh`).
    """

    data_tests: bool = True  # `dbt build` (models + data tests); false: `dbt run`
    full_refresh: bool = False  # rebuild every model from raw (changed model SQL, hard deletes)
    full_tests: bool = False  # every data test reads every row (a full refresh implies it)


def dbt_command(config: DbtModelsConfig, settings: Settings) -> list[str]:
    """The dbt arguments for a run with `config` against `settings`' warehouse (unit tests run
    in CI, not every run)."""
    command = ["build", "--exclude-resource-type", "unit_test"] if config.data_tests else ["run"]
    if config.full_refresh:
        command.append("--full-refresh")
    # The same vars on every invocation (the webhook job's too) keep the partial parse valid.
    return command + dbt_vars(settings, full_tests=config.full_tests or config.full_refresh)


# What the webhook job runs: the models' changed rows (then the serving copy), nothing else.
REFRESH_CONFIG = {"data_tests": False}


def dbt_mode(config: DbtModelsConfig) -> str:
    """What kind of run `config` makes, as the timings log names it: `refresh` (the webhook
    job's `dbt run`), `build` (models and changed-row tests), `full-tests`, `full-refresh`."""
    if config.full_refresh:
        return "full-refresh"
    if not config.data_tests:
        return "refresh"
    return "full-tests" if config.full_tests else "build"


def marts_timing_record(config: DbtModelsConfig, run_id: str, started: float, dbt_done: float,
                        published: float | None, *, views_kept: bool = False, in_process: bool = False) -> dict:
    """The timings line of one run of the dbt asset (`marts.timing_record`), its mode from `config`."""
    return timing_record(dbt_mode(config), run_id, started, dbt_done, published,
                         views_kept=views_kept, in_process=in_process)


def build_dbt_models():
    """The dbt models as one unpartitioned asset set downstream of the daily raw assets.

    A mart is one table rebuilt (incrementally, from its own watermarks) by `dbt build`,
    whatever days the run synced: it has no daily partitions to report. Declaring it daily
    would also make Dagster write one materialization (and one planned event) per model per
    day of the run: about 35,000 event-log writes for a three-year backfill, which took
    minutes; unpartitioned, a run writes one per model. Runs over a range of raw partitions
    include the models, so a backfill of any length is still one run.
    """

    translator = DriftDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project,
        # Meaningless for an unpartitioned asset except to Dagster's CLI, which takes a
        # --partition-range over a selection only when every selected asset has this policy.
        backfill_policy=single_run,
        dagster_dbt_translator=translator,
    )
    def drift_dbt_models(context: AssetExecutionContext, config: DbtModelsConfig, dbt: DbtCliResource,
                         drift: DriftApiResource):
        """Build the dbt models and run their data tests (on what changed unless configured
        otherwise); the serving assets downstream republish what analysts see."""
        settings = drift.settings()
        started = time.time()
        manifest = ensure_manifest()
        refresh = dbt_mode(config) == "refresh"
        # The webhook refresh leaves the views alone while dbt last created them as they are
        # defined now (re-creating one changes nothing but costs its turn in dbt).
        keep_views = refresh and views_current(settings, manifest)
        all_models = set(context.assets_def.keys) <= set(context.selected_asset_keys)
        args = dbt_command(config, settings) + (EXCLUDE_VIEWS if keep_views else [])
        target_path = dbt_run_dir(settings, context.run.run_id[:8])
        # The webhook refresh runs in this process (no dbt process to start: 6.4 -> 4.2 s at 1M,
        # measured side by side). Builds keep their own dbt process: in process they measured
        # no faster here, and a process keeps a 2 GB full build's memory out of the run's.
        in_process = refresh and all_models and not settings.warehouse_on_postgres
        with exclusive_build(settings):  # parallel runs (Postgres) build one at a time
            if in_process:
                yield from _dbt_in_process(context, args, target_path, manifest, translator)
            else:
                yield from dbt.cli(args, context=context, target_path=target_path).stream()
        if all_models and not keep_views:
            record_views_created(settings, manifest)
        dbt_done = time.time()
        # The serving copy, the report and the docs are assets downstream (assets/serving.py).
        append_json_line(settings.home / TIMINGS_LOG,
                         marts_timing_record(config, context.run.run_id, started, dbt_done, None,
                                             views_kept=keep_views, in_process=in_process))

    return drift_dbt_models


def _dbt_in_process(context: AssetExecutionContext, args: list[str], target_path, manifest, translator):
    """A dbt command over every model in the run's own process, its events turned into
    Dagster's by dagster-dbt exactly as from a dbt process's JSON log, so each model's
    materialization (and a test's check result) still comes from dbt's result for it. dbt's
    default selection is the run's, so no dagster-dbt selection is needed."""
    context.log.info(f"Running dbt in process: `dbt {' '.join(args)}` (artifacts and dbt.log: {target_path})")
    result = run_dbt_in_process(args, target_path)
    manifest = json.loads(Path(manifest).read_text())  # once, not once per event
    yield from dbt_events_to_dagster(result.events, manifest=manifest, translator=translator, context=context,
                                     target_path=target_path, project=dbt_project)
    if not result.success:
        first = "; ".join(error.splitlines()[0] for error in result.errors[:3] if error.strip())
        raise Failure(description=f"dbt {args[0]} failed: {first or 'no error reported'} (dbt's log: {target_path / 'dbt.log'})",
                      metadata={"errors": MetadataValue.md("\n\n".join(result.errors) or "(none reported)")})


def publish_dbt_docs_of_models(context: AssetExecutionContext, dbt: DbtCliResource, settings: Settings):
    """`dbt docs generate`, then its files to `serving/dbt-docs/`; the folder, or None if dbt
    failed (docs are a convenience: a data run does not fail for them).

    The serving assets' `serving/dbt_docs` step runs it (the catalog reads the warehouse). Its target is a run folder under $DRIFT_PIPELINE_HOME/dbt/ like every dbt invocation's.
    """
    fingerprint, recorded = docs_fingerprint(settings), settings.state_dir / DOCS_FINGERPRINT
    published = settings.serving_dir / DBT_DOCS_DIR
    if (published / "catalog.json").exists() and recorded.exists() and recorded.read_text() == fingerprint:
        context.log.info("dbt docs unchanged (same models, sources and dbt): not regenerated")
        return published
    generated = dbt_run_dir(settings, "docs")
    # The pipeline's vars, so this parse stays valid for the next run to start from.
    # Tests have no catalog entry: compiling them (most of the project's nodes) only filled the
    # docs' "compiled code" tab of each test, a third of the command's CPU time.
    invocation = dbt.cli(["docs", "generate", "--exclude", "resource_type:test resource_type:unit_test",
                          *dbt_vars(settings)], manifest=ensure_manifest(), target_path=generated,
                         raise_on_error=False).wait()
    if not invocation.is_successful():
        context.log.warning(f"dbt docs generate failed; serving/dbt-docs is unchanged "
                            f"(dbt's log: {generated / 'dbt.log'})")
        return None
    published = publish_dbt_docs(settings, generated)
    atomic_write_text(recorded, fingerprint)
    return published
