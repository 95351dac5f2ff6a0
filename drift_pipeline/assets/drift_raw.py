"""Raw Drift assets: one pass over the conversation list fills all six raw tables of a window,
for every connected Drift org (or the one named by the run's `drift/org` tag)."""


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

from drift_pipeline.drift.errors import DriftConfigError
from drift_pipeline.drift.orgs import OrgClients, missing_tokens_reason
from drift_pipeline.ingest.sync import ConversationSync, SyncStats
from drift_pipeline.partitions import FULL_WINDOW_TAG, ORG_TAG, range_label, single_run
from drift_pipeline.resources import DriftApiResource, WarehouseResource, measure, warehouse_connection
from drift_pipeline.warehouse import checks

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
             partition_keys: str = "", full_window: bool = False,
             org_ids: list[int | None] | None = None) -> list[SyncStats]:
    """Sync `[window_start, window_end)` (naive UTC) for each of `org_ids` (default: every
    connected org) and return what each did.

    The orgs run side by side, each with its own client (token, pacer, 600/min budget) and its
    own `raw.exports` job and checkpoint; they share the one warehouse connection, which is safe
    because no transaction spans an await. One org's failure does not stop the others: it is
    raised once they are done.
    """
    settings = drift.settings()
    if org_ids is None:
        orgs = drift.orgs()
        org_ids = orgs.connected or list(orgs.disconnected)

    async def one(clients: OrgClients, conn, org_id: int | None) -> SyncStats:
        sync = ConversationSync(
            clients.for_org(org_id), conn,
            salt=settings.secret("pii_salt"),
            # A static token names no org: the one learnt by an earlier run saves a call.
            org_id=org_id if org_id is not None else drift.known_org_id(),
            overlap=timedelta(minutes=settings.overlap_minutes),
            partition_keys=partition_keys,
            full_window=full_window,
        )
        return await sync.run(window_start, window_end)

    async def go():
        async with OrgClients(settings) as clients:
            with warehouse_connection(duckdb) as conn:
                return await asyncio.gather(*(one(clients, conn, org) for org in org_ids),
                                            return_exceptions=True)

    outcomes = asyncio.run(go())
    failures = [(org, o) for org, o in zip(org_ids, outcomes) if isinstance(o, BaseException)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    for stats in done:
        if stats.org_id is not None and org_ids == [None]:
            drift.remember_org_id(stats.org_id)
    if len(failures) == 1 and len(org_ids) == 1:
        raise failures[0][1]
    if failures:
        raise OrgSyncFailed("; ".join(f"org {org}: {type(exc).__name__}: {_first_line(exc)}"
                                      for org, exc in failures)) from failures[0][1]
    return done


class OrgSyncFailed(RuntimeError):
    """Some orgs of a several-org sync failed (the others' data is committed)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


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
        org_ids = _orgs_of_run(context, drift)
        all_stats = run_sync(drift, duckdb, start, end, partition_label, full_window=full_window,
                             org_ids=org_ids)
        # Each org's figures, once: on its raw.exports row and in one observation. Dagster
        # copies a MaterializeResult's metadata onto the event of every partition in the range
        # (six assets x 1,000+ days in a backfill), so that metadata stays three small values.
        for stats in all_stats:
            context.log_event(AssetObservation(
                asset_key=raw_key("conversations"),
                description=f"sync job {stats.job_id} of org {stats.org_id} for {partition_label}",
                metadata={**{k: v for k, v in stats.as_metadata().items() if v is not None},
                          "partitions": MetadataValue.text(partition_label),
                          "summary": MetadataValue.md(_summary_markdown(stats))},
            ))
        for name in RAW_ASSETS:
            yield MaterializeResult(asset_key=raw_key(name), metadata={
                "rows_upserted": MetadataValue.int(sum(s.rows.get(name, 0) for s in all_stats)),
                "partitions": MetadataValue.text(partition_label),
                "job_id": MetadataValue.text(",".join(s.job_id for s in all_stats)),
            })

    return drift_raw_sync


def _orgs_of_run(context: AssetExecutionContext, drift: DriftApiResource) -> list[int | None]:
    """The org named by the run's `drift/org` tag, else every connected org (those Drift
    disconnected are left out, with a warning, until `auth exchange`)."""
    named = context.run.tags.get(ORG_TAG)
    orgs = drift.orgs()
    if named:
        try:
            org_id = int(named)
        except ValueError:
            raise ValueError(f"run tag {ORG_TAG}={named!r} is not a Drift org id") from None
        stored = [o for o in [*orgs.connected, *orgs.disconnected] if o is not None]
        if stored and org_id not in stored:
            raise DriftConfigError(missing_tokens_reason(org_id))
        return [org_id]
    for org_id, reason in orgs.disconnected.items():
        if orgs.connected:
            context.log.warning(f"org {org_id} left out of this run: {reason}")
    # With every org disconnected, the run fails on their tokens with Drift's own reason.
    return orgs.connected or list(orgs.disconnected)


def _summary_markdown(stats: SyncStats) -> str:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in stats.as_metadata().items()]
    return "\n".join(lines)


# -- asset checks --------------------------------------------------------------------------
@asset_check(asset=raw_key("conversations"), description="No conversation key appears twice.")
def conversations_unique(duckdb: WarehouseResource) -> AssetCheckResult:
    dupes = measure(duckdb, checks.duplicate_conversation_keys)
    return AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})


@asset_check(asset=raw_key("messages"), description="No message key appears twice.")
def messages_unique(duckdb: WarehouseResource) -> AssetCheckResult:
    dupes = measure(duckdb, checks.duplicate_message_keys)
    return AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})


@asset_check(asset=raw_key("messages"), description="Every message belongs to a stored conversation.")
def messages_have_conversation(duckdb: WarehouseResource) -> AssetCheckResult:
    orphans = measure(duckdb, checks.orphan_messages)
    return AssetCheckResult(passed=orphans == 0, metadata={"orphan_messages": orphans})


@asset_check(asset=raw_key("conversations"),
             description="The newest conversation update is recent (warns after 36 hours).")
def conversations_fresh(duckdb: WarehouseResource) -> AssetCheckResult:
    # The clock is read here, not in SQL: naive UTC timestamps subtract alike on both engines.
    newest = measure(duckdb, checks.newest_conversation_update)
    lag_hours = None if newest is None else (
        datetime.now(timezone.utc).replace(tzinfo=None) - newest).total_seconds() / 3600
    passed = lag_hours is not None and lag_hours <= 36
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={"hours_since_newest_update": round(lag_hours, 2) if lag_hours is not None else -1.0},
    )


raw_asset_checks = [conversations_unique, messages_unique, messages_have_conversation, conversations_fresh]
