"""The Dagster instance lives inside $DRIFT_PIPELINE_HOME so runs, schedules and sensor cursors
persist with the data they describe, and each test home is isolated."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster import DagsterInstance
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

# The batched event log lives with the other hooks into Dagster's internals (adapters.py); a
# home's dagster.yaml written before it moved names it here, so the name stays importable.
from drift_pipeline.adapters import EVENT_BATCH_SIZE, RUN_QUEUE_YAML, BatchedSqliteEventLogStorage  # noqa: F401
from drift_pipeline.settings import Settings, SettingsError
from drift_pipeline.warehouse.postgres import PostgresConnection

# One run at a time: DuckDB allows one writer process, so a second run would only wait on the lock.
# The daemon looks at the run queue every second, not every 5 s: a webhook's run (the sensor
# queues it) waits for that look, 2.5 s on average at 5 s, before its process even starts.
# The event log is Dagster's SQLite one, storing a batch of asset events in one transaction per
# file (adapters.BatchedSqliteEventLogStorage): same files and tables, so either class reads them.
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
""" + RUN_QUEUE_YAML + """\
event_log_storage:
  module: drift_pipeline.adapters
  class: BatchedSqliteEventLogStorage
  config:
    base_dir: {runs_dir}
"""

# What earlier versions wrote: such homes are upgraded in place (nothing else changes).
_PREVIOUS_DAGSTER_YAMLS = (
    """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
""",
    DAGSTER_YAML.replace(RUN_QUEUE_YAML, "").replace("drift_pipeline.adapters", "drift_pipeline.instance"),
    DAGSTER_YAML.replace("drift_pipeline.adapters", "drift_pipeline.instance"),  # before adapters.py
)

# Past one DuckDB file (docs/postgres.md): runs, events and schedules in Postgres, read from
# the environment at load (never written here: the URL may carry a password), and runs in
# parallel: the warehouse has many writers there, and dbt builds take a lock of their own.
POSTGRES_DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: {max_runs}
""" + RUN_QUEUE_YAML + """\
storage:
  postgres:
    postgres_url:
      env: DRIFT_DAGSTER_STORAGE_URL
"""
POSTGRES_MAX_CONCURRENT_RUNS = 4
# Advisory lock taken while Dagster creates its tables: two processes starting on an empty
# database would both try to and one fails ("relation event_logs already exists").
_DAGSTER_SCHEMA_LOCK = 4_170_017

def dagster_home(settings: Settings) -> Path:
    """$DRIFT_PIPELINE_HOME/dagster, unless the operator set DAGSTER_HOME."""
    return Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")


def ensure_dagster_home(settings: Settings) -> Path:
    """The Dagster home (`dagster_home`) with the pipeline's dagster.yaml in it (and Dagster's
    tables, in Postgres). Changes nothing in this process's environment: a process that starts
    Dagster passes `dagster_environment` to it (the CLI's entry point, `make dev`)."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    sqlite = DAGSTER_YAML.format(runs_dir=json.dumps(str(home / "history" / "runs")))
    postgres = POSTGRES_DAGSTER_YAML.format(max_runs=POSTGRES_MAX_CONCURRENT_RUNS)
    wanted = postgres if settings.dagster_storage_url else sqlite
    # Only a file this module wrote is replaced: an operator's own dagster.yaml stays theirs.
    previous = [text.format(runs_dir=json.dumps(str(home / "history" / "runs"))) for text in _PREVIOUS_DAGSTER_YAMLS]
    previous.append(postgres.replace(RUN_QUEUE_YAML, ""))
    if not config.exists() or config.read_text() in (*previous, sqlite, postgres):
        if not config.exists() or config.read_text() != wanted:
            config.write_text(wanted)
    if settings.dagster_storage_url and config.read_text() == postgres:
        _create_dagster_tables(settings.dagster_storage_url)
    return home


def dagster_environment(settings: Settings) -> dict[str, str]:
    """What a process that runs Dagster for `settings` needs in its environment, and what its
    run workers inherit: Dagster's home, the pipeline's home and warehouse (the definitions
    a run worker loads read them), Postgres storage's URL (dagster.yaml reads it from there:
    it may carry a password), and two of Dagster's own switches, unless the operator set them.
    Only process edges apply it: the CLI's entry point to itself, `make dev` to `dagster dev`."""
    env = {"DAGSTER_HOME": str(dagster_home(settings)), "DRIFT_PIPELINE_HOME": str(settings.home)}
    if settings.warehouse_url:
        env["DRIFT_WAREHOUSE_URL"] = settings.warehouse_url
    if settings.dagster_storage_url:
        env["DRIFT_DAGSTER_STORAGE_URL"] = _psycopg2_url(settings.dagster_storage_url)
    # Let Dagster hand a range run's asset events to the storage in batches (see above).
    env["DAGSTER_EVENT_BATCH_SIZE"] = os.environ.get("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    # A run over a range of days announces each asset once with the range (Dagster's own
    # switch), not once per asset per day: thousands of event-log writes saved on a multi-year
    # backfill. Read by whichever process creates the run. The price: partitions of a failed
    # run show as missing, not failed; raw.exports records the failure either way.
    env["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = os.environ.get(
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    return env


def open_instance(settings: Settings) -> DagsterInstance:
    """The home's Dagster instance, made ready (`ensure_dagster_home`), found by its folder
    rather than by this process's DAGSTER_HOME. With Postgres storage its dagster.yaml reads
    DRIFT_DAGSTER_STORAGE_URL from the environment (`dagster_environment`)."""
    home = ensure_dagster_home(settings)
    if settings.dagster_storage_url and "DRIFT_DAGSTER_STORAGE_URL" not in os.environ:
        raise SettingsError("Dagster's Postgres storage reads DRIFT_DAGSTER_STORAGE_URL from the environment: "
                            "run through `drift-pipeline`, which sets it from DRIFT_DAGSTER_PG_URL")
    return DagsterInstance.from_config(str(home))


def _psycopg2_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg2 driver named: SQLAlchemy 2.1 takes `postgresql://` as
    psycopg 3, whose server-side parameters break dagster-postgres (`NOTIFY run_events, $1`)."""
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def _create_dagster_tables(url: str) -> None:
    """Let Dagster create (or find) its tables in Postgres, one process at a time: each of
    dagster-postgres's storages creates its own when it opens."""
    with PostgresConnection(url) as conn:
        conn.execute("SELECT pg_advisory_lock(?)", [_DAGSTER_SCHEMA_LOCK]).fetchall()
        for storage in (PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage):
            storage(_psycopg2_url(url)).dispose()
