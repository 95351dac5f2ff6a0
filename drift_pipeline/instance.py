"""The Dagster instance lives inside $DRIFT_PIPELINE_HOME so runs, schedules and sensor cursors
persist with the data they describe, and each test home is isolated."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from dagster import DagsterInstance, EventLogEntry
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData

from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.postgres import PostgresConnection

# One run at a time: DuckDB allows one writer process, so a second run would only wait on the lock.
# The daemon looks at the run queue every second, not every 5 s: a webhook's run (the sensor
# queues it) waits for that look, 2.5 s on average at 5 s, before its process even starts.
# The event log is Dagster's SQLite one, storing a batch of asset events in one transaction per
# file (BatchedSqliteEventLogStorage below): same files and tables, so either class reads them.
RUN_QUEUE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
""" + RUN_QUEUE_YAML + """\
event_log_storage:
  module: drift_pipeline.instance
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
    DAGSTER_YAML.replace(RUN_QUEUE_YAML, ""),  # before the 1 s run queue
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

# Asset events Dagster hands over in batches (a range run's materializations, its planned
# events) once DAGSTER_EVENT_BATCH_SIZE is set; at most this many per write.
EVENT_BATCH_SIZE = "2000"


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, storing a batch of asset events in two transactions.

    A run over N daily partitions writes one materialization per raw asset per day: 6,600 for
    three years. The stock SQLite storage opens, commits and closes both its run file and its
    index file for every one of them (89 ms per event measured on a busy 2-core machine, 13 ms
    batched); a batch shares one transaction per file. Anything else goes through the stock
    path, one event at a time.
    """

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value):
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not _plain_asset_events(events):
            super().store_event_batch(events)
            return
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        with self.index_transaction() as conn:
            # Mirrored into the index file one by one: its tags need each row's id.
            event_ids = [conn.execute(self.prepare_insert_event(event)).inserted_primary_key[0]
                         for event in events]
            self._store_asset_event_tags(conn, events, event_ids)
            # An asset's index row keeps the latest event of each kind: in a batch of 1,000
            # days of one asset, only the last of each kind changes it.
            last = {(event.get_dagster_event().asset_key, event.dagster_event_type): i
                    for i, event in enumerate(events)}
            for i in sorted(last.values()):
                self._store_asset_event(conn, events[i], event_ids[i])

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """One planned row per check, not one per partition of the run.

        Dagster gives every check planned in a range run the run's partition subset, even a
        check of an unpartitioned dbt model, and stores one row (with the whole serialized
        event) per partition: 84 checks x 731 days put 61,000 rows and 96 MB into the index of
        a two-year backfill, and the rows stayed `PLANNED` because no check here evaluates per
        partition (each evaluation lands on the row without a partition). So the planned row is
        that one; an evaluation for a partition would find no row and add its own.
        """
        planned = event.get_dagster_event().event_specific_data
        if getattr(planned, "partitions_subset", None) is None:
            super()._store_asset_check_evaluation_planned(event, event_id)
            return
        whole = event._replace(dagster_event=event.get_dagster_event()._replace(
            event_specific_data=AssetCheckEvaluationPlanned(asset_key=planned.asset_key,
                                                            check_name=planned.check_name)))
        super()._store_asset_check_evaluation_planned(whole, event_id)


def _plain_asset_events(events: Sequence[EventLogEntry]) -> bool:
    """Asset events of one run that the stock storage would only log and index (no checks,
    no run status): the ones a batch can store."""
    return bool(events) and len({event.run_id for event in events}) == 1 and all(
        event.is_dagster_event
        and event.dagster_event_type in ASSET_EVENTS
        and event.dagster_event_type not in EVENT_TYPE_TO_PIPELINE_RUN_STATUS
        and event.dagster_event_type not in ASSET_CHECK_EVENTS
        and event.get_dagster_event().asset_key is not None
        for event in events
    )


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at $DRIFT_PIPELINE_HOME/dagster (unless the operator set one)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
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
    if settings.dagster_storage_url:
        os.environ["DRIFT_DAGSTER_STORAGE_URL"] = _psycopg2_url(settings.dagster_storage_url)
    os.environ["DAGSTER_HOME"] = str(home)
    # Let Dagster hand a range run's asset events to the storage in batches (see above).
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    # A run over a range of days announces each asset once with the range (Dagster's own
    # switch), not once per asset per day: thousands of event-log writes saved on a multi-year
    # backfill. Read by whichever process creates the run (this one, or `dagster dev`, which
    # inherits it). The price: partitions of a failed run show as missing, not failed;
    # raw.exports records the failure either way.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    os.environ["DRIFT_PIPELINE_HOME"] = str(settings.home)
    if settings.warehouse_url:
        os.environ["DRIFT_WAREHOUSE_URL"] = settings.warehouse_url  # run workers build the same resources
    if settings.dagster_storage_url and config.read_text() == postgres:
        _create_dagster_tables(settings.dagster_storage_url)
    return home


def _psycopg2_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg2 driver named: SQLAlchemy 2.1 takes `postgresql://` as
    psycopg 3, whose server-side parameters break dagster-postgres (`NOTIFY run_events, $1`)."""
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def _create_dagster_tables(url: str) -> None:
    """Let Dagster create (or find) its tables in Postgres, one process at a time."""
    with PostgresConnection(url) as conn:
        conn.execute("SELECT pg_advisory_lock(?)", [_DAGSTER_SCHEMA_LOCK]).fetchall()
        with DagsterInstance.get():
            pass
