"""Every hook into a pinned library's internals, in one place, each kept for a measured gain
that nothing public gives. tests/test_adapters.py pins what each relies on and fails, naming
the hook, when an upgrade changes it; remove a hook here rather than patch around it.

- `BatchedSqliteEventLogStorage`: Dagster's SQLite event log writing a batch of asset events in
  one transaction per file (a three-year backfill: 89 -> 13 ms an event on a busy 2-core VM),
  and one planned row per asset check instead of one per partition (61,000 rows and 96 MB less
  in a two-year backfill's index). Dagster's storage classes are configurable by module path
  but their internals are not public.
- `RUN_QUEUE_YAML`: the queued run coordinator, named by the module path Dagster's own docs
  give for dagster.yaml (`dagster._core.run_coordinator`).
- `DbtCli`: dagster-dbt's resource without the `dbt --version` process it starts before every
  command and the dbt adapter it builds in process for row counts this pipeline never asks
  for (7-8 s a command on a loaded 2-core machine), through two private methods.
- `dbt_events_to_dagster`: dbt's events from an in-process run (dbt's public programmatic
  runner) turned into Dagster events by dagster-dbt's own code, as for a dbt process's JSON log
  (the webhook refresh at 1M: 6.4 s as a process, 4.2 s in process). dagster-dbt does not
  export the class that does it.
- `dbt_reported_errors`: the models and tests dbt reported failing, read from the text
  dagster-dbt puts in its error, which has no structured field for them.
"""

from __future__ import annotations

from functools import cached_property
from importlib.metadata import version as installed_version
from typing import Iterator, Sequence

from dagster import EventLogEntry
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData
from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from packaging import version

# -- Dagster's instance --------------------------------------------------------------------------
RUN_QUEUE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""

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


# -- dagster-dbt ---------------------------------------------------------------------------------
class DbtCli(DbtCliResource):
    """dagster-dbt's resource without the two things it does before every dbt command that
    this pipeline never uses (measured: 7-8 s a command on a loaded 2-core machine, paid by
    every build, docs and webhook refresh). Both are private hooks of the pinned dagster-dbt.

    - `dbt --version` in a subprocess to learn which dbt it drives (the resource is built
      afresh in each run): a whole dbt start-up, and dbt-core's version check asks PyPI for the
      latest release, a network call a private deployment should not make. The dbt on PATH is
      this environment's dbt-core (pinned `>=1.11,<1.12`): its version is the installed one's.
    - A dbt adapter built in this process (profile, project, every macro parsed) for
      `fetch_row_counts()` / `fetch_column_metadata()`, which the assets do not call."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


def dbt_events_to_dagster(raw_events: list[dict], *, manifest: dict, translator, context, target_path,
                          project) -> Iterator:
    """Dagster's events (materializations, check results) for dbt's structured events, each a
    dict as `dbt --log-format json` prints it, exactly as dagster-dbt makes them from a dbt
    process."""
    for raw_event in raw_events:
        yield from DbtCoreCliEventMessage(raw_event=raw_event, event_history_metadata={}).to_default_asset_events(
            manifest=manifest, dagster_dbt_translator=translator, context=context, target_path=target_path,
            project=project)


# dagster-dbt's failed-invocation error lists what dbt reported after this line.
DBT_ERRORS_MARKER = "Errors parsed from dbt logs:"


def dbt_reported_errors(text: str) -> list[str]:
    """The errors dbt reported, one a line, from the text of dagster-dbt's error."""
    if DBT_ERRORS_MARKER not in text:
        return []
    return [line.strip() for line in text.split(DBT_ERRORS_MARKER, 1)[1].strip().splitlines() if line.strip()]
