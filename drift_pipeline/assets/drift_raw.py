"""Raw Drift assets: one pass over the conversation list fills all six raw tables of a window."""


import asyncio
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
    multi_asset,
)

from drift_pipeline.ingest.sync import ConversationSync, SyncStats
from drift_pipeline.partitions import FULL_WINDOW_TAG, range_label, single_run
from drift_pipeline.resources import DriftApiResource, WarehouseResource, warehouse_connection

RAW_GROUP = "drift_raw"
OWNERS = ["team:data-platform"]

RAW_ASSETS = {
    "conversations": "One row per Drift conversation (status, contact, inbox, participants, tags) "
                     "whose `updatedAt` fell in the synced window.",
    "messages": "Every message of the synced conversations: chat, notes, prompts, suggestions and "
                "edits, with the author class. Bodies stay here; they are never published.",
    "participants": "Users and the contact taking part in each conversation.",
    "users": "Drift users (agents and bots), fetched once per run; emails hashed.",
    "contacts": "Contacts of the synced conversations, fetched once per id; emails hashed.",
    "status_events": "Status history the pipeline observed: polls, webhooks and reports.",
}


def raw_key(table: str) -> AssetKey:
    return AssetKey(["raw", table])


def raw_specs(partitions_def: PartitionsDefinition) -> list[AssetSpec]:
    """The six raw tables, partitioned by day like everything else."""
    return [
        AssetSpec(
            raw_key(name),
            description=description,
            group_name=RAW_GROUP,
            owners=OWNERS,
            kinds={"drift", "duckdb"},
            partitions_def=partitions_def,
            skippable=False,
        )
        for name, description in RAW_ASSETS.items()
    ]


def run_sync(drift: DriftApiResource, duckdb: WarehouseResource, window_start, window_end,
             partition_keys: str = "", full_window: bool = False) -> SyncStats:
    """Sync `[window_start, window_end)` (naive UTC) and return what it did."""
    settings = drift.settings()

    async def go():
        async with drift.client() as client:
            with warehouse_connection(duckdb) as conn:
                sync = ConversationSync(
                    client, conn,
                    salt=settings.secret("pii_salt"),
                    org_id=drift.known_org_id(),
                    overlap=timedelta(minutes=settings.overlap_minutes),
                    partition_keys=partition_keys,
                    full_window=full_window,
                )
                return await sync.run(window_start, window_end)

    stats = asyncio.run(go())
    if stats.org_id is not None:
        drift.remember_org_id(stats.org_id)
    return stats


def build_drift_raw_sync(partitions_def: PartitionsDefinition):
    """The multi-asset that fills the raw tables for a range of days in one pass.

    Built from the partitions definition (whose first day is DRIFT_HISTORY_START) when the
    definitions load, not at import.
    """

    @multi_asset(
        name="drift_raw_sync",
        specs=raw_specs(partitions_def),
        partitions_def=partitions_def,
        backfill_policy=single_run,
        description="Incremental sync of Drift conversations into raw.* for the selected days.",
    )
    def drift_raw_sync(context: AssetExecutionContext, drift: DriftApiResource, duckdb: WarehouseResource):
        # One window over the whole range, however many days: the newest-first list is paged
        # once, not once per partition.
        window = context.partition_time_window
        start = window.start.astimezone(timezone.utc).replace(tzinfo=None)
        end = window.end.astimezone(timezone.utc).replace(tzinfo=None)
        partition_label = range_label(context.partition_keys)
        context.log.info(f"syncing conversations updated in [{start}, {end}) for {partition_label}")
        full_window = context.run.tags.get(FULL_WINDOW_TAG) == "true"
        stats = run_sync(drift, duckdb, start, end, partition_label, full_window=full_window)
        # The job's figures, once: on the raw.exports row and in one observation. Dagster
        # copies a MaterializeResult's metadata onto the event of every partition in the range
        # (six assets x 1,000+ days in a backfill), so that metadata stays three small values.
        context.log_event(AssetObservation(
            asset_key=raw_key("conversations"),
            description=f"sync job {stats.job_id} for {partition_label}",
            metadata={**{k: v for k, v in stats.as_metadata().items() if v is not None},
                      "partitions": MetadataValue.text(partition_label),
                      "summary": MetadataValue.md(_summary_markdown(stats))},
        ))
        for name in RAW_ASSETS:
            yield MaterializeResult(asset_key=raw_key(name), metadata={
                "rows_upserted": MetadataValue.int(stats.rows.get(name, 0)),
                "partitions": MetadataValue.text(partition_label),
                "job_id": MetadataValue.text(stats.job_id),
            })

    return drift_raw_sync


def _summary_markdown(stats: SyncStats) -> str:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in stats.as_metadata().items()]
    return "\n".join(lines)


# -- asset checks --------------------------------------------------------------------------
def _scalar(duckdb: WarehouseResource, sql: str):
    with warehouse_connection(duckdb) as conn:
        return conn.execute(sql).fetchall()[0][0]


@asset_check(asset=raw_key("conversations"), description="No conversation key appears twice.")
def conversations_unique(duckdb: WarehouseResource) -> AssetCheckResult:
    dupes = _scalar(duckdb, "SELECT count(*) FROM (SELECT org_id, conversation_id FROM raw.conversations "
                            "GROUP BY org_id, conversation_id HAVING count(*) > 1) AS dupes")
    return AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})


@asset_check(asset=raw_key("messages"), description="No message key appears twice.")
def messages_unique(duckdb: WarehouseResource) -> AssetCheckResult:
    dupes = _scalar(duckdb, "SELECT count(*) FROM (SELECT org_id, conversation_id, message_id "
                            "FROM raw.messages GROUP BY org_id, conversation_id, message_id "
                            "HAVING count(*) > 1) AS dupes")
    return AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})


@asset_check(asset=raw_key("messages"), description="Every message belongs to a stored conversation.")
def messages_have_conversation(duckdb: WarehouseResource) -> AssetCheckResult:
    orphans = _scalar(duckdb, "SELECT count(*) FROM raw.messages m WHERE NOT EXISTS (SELECT 1 FROM "
                              "raw.conversations c WHERE c.org_id = m.org_id "
                              "AND c.conversation_id = m.conversation_id)")
    return AssetCheckResult(passed=orphans == 0, metadata={"orphan_messages": orphans})


@asset_check(asset=raw_key("conversations"),
             description="The newest conversation update is recent (warns after 36 hours).")
def conversations_fresh(duckdb: WarehouseResource) -> AssetCheckResult:
    # The clock is read here, not in SQL: naive UTC timestamps subtract alike on both engines.
    newest = _scalar(duckdb, "SELECT max(updated_at) FROM raw.conversations")
    lag_hours = None if newest is None else (
        datetime.now(timezone.utc).replace(tzinfo=None) - newest).total_seconds() / 3600
    passed = lag_hours is not None and lag_hours <= 36
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={"hours_since_newest_update": round(lag_hours, 2) if lag_hours is not None else -1.0},
    )


raw_asset_checks = [conversations_unique, messages_unique, messages_have_conversation, conversations_fresh]
