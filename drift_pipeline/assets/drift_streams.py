"""Raw Drift streams besides conversations: meetings (and their observed changes), playbooks
(and their goals) and accounts, for every connected Drift org (or the one named by the run's
`drift/org` tag).

Unpartitioned: Drift serves meetings by its own clock (the last 30 days of slots), not by the
run's days, so every run, daily or a backfill, asks for the whole window Drift serves and keeps
what it saw. Each stream needs an optional scope (`user_read` for meetings, `playbook_read`,
`account_read`): a workspace whose app lacks one answers 403 for that stream only, which is then
skipped with a warning and a failed (WARN) check naming the scope, and the run goes on.
"""


import asyncio

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset_check,
    multi_asset,
)

from drift_pipeline.assets.drift_raw import OWNERS, RAW_GROUP, OrgSyncFailed, _orgs_of_run, raw_key
from drift_pipeline.drift.session import ENDPOINT_SCOPES
from drift_pipeline.drift.errors import DriftMissingScope
from drift_pipeline.drift.orgs import OrgClients
from drift_pipeline.ingest.streams import StreamStats, sync_accounts, sync_meetings, sync_playbooks
from drift_pipeline.partitions import single_run
from drift_pipeline.resources import DriftApiResource, WarehouseResource, measure, warehouse_connection
from drift_pipeline.warehouse import streams as stream_checks

# Stream -> the raw tables it fills, in the order a run reads them: the short lists first, so
# Drift's clock (its `Date` header) is known before the meetings window is asked for.
STREAMS = {
    "playbooks": ("playbooks", "playbook_goals_defined"),
    "accounts": ("accounts",),
    "meetings": ("meetings", "meeting_changes"),
}
STREAM_SCOPES = {"meetings": ENDPOINT_SCOPES["meetings"], "playbooks": ENDPOINT_SCOPES["playbooks"],
                 "accounts": ENDPOINT_SCOPES["accounts"]}
_SYNC = {"playbooks": sync_playbooks, "accounts": sync_accounts, "meetings": sync_meetings}

DESCRIPTIONS = {
    "meetings": "Booked meetings, one row per slug: the newest state seen. Drift serves a meeting only "
                "while its slot is within its last 30 days; the row stays after that. Notes only hashed.",
    "meeting_changes": "Every (slug, updatedAt) observed, with its status and slot: cancellations, "
                       "rebooks and reschedules keep their history.",
    "playbooks": "Every playbook Drift ever listed (it lists only enabled ones): first_seen_at, "
                 "last_listed_at, currently_listed.",
    "playbook_goals_defined": "The goals each listed playbook defines.",
    "accounts": "ABM accounts, deleted ones kept with deleted = true.",
}


def scope_check_name(stream: str) -> str:
    return f"{stream}_scope_granted"


def run_streams(drift: DriftApiResource, duckdb: WarehouseResource,
                org_ids: list[int | None]) -> dict[str, list[StreamStats]]:
    """Read every stream for each org (side by side, each org with its own client); a stream
    refused for a missing scope comes back with `missing_scope` set. Other failures of one org
    are raised once the others are done."""
    settings = drift.settings()
    salt = settings.secret("pii_salt")

    async def one(clients: OrgClients, conn, org_id: int | None) -> list[StreamStats]:
        client = clients.for_org(org_id)
        org = org_id if org_id is not None else (drift.known_org_id() or client.org_id)
        if org is None:
            # A static token names no org: the users list does (the conversation sync reads it too).
            org = int((await client.list_users())[0]["orgId"])
            drift.remember_org_id(org)
        done = []
        for stream, sync in _SYNC.items():
            calls = client.stats.calls
            try:
                options = {"salt": salt} if stream == "meetings" else {}
                stats = await sync(client, conn, org_id=org, **options)
            except DriftMissingScope as exc:
                stats = StreamStats(stream, org, missing_scope=exc.scope, api_calls=client.stats.calls - calls)
            done.append(stats)
        return done

    async def go():
        async with OrgClients(settings) as clients:
            with warehouse_connection(duckdb) as conn:
                return await asyncio.gather(*(one(clients, conn, org) for org in org_ids), return_exceptions=True)

    outcomes = asyncio.run(go())
    failures = [(org, o) for org, o in zip(org_ids, outcomes) if isinstance(o, BaseException)]
    if len(failures) == 1 and len(org_ids) == 1:
        raise failures[0][1]
    if failures:
        raise OrgSyncFailed("; ".join(f"org {org}: {type(exc).__name__}: {exc}" for org, exc in failures)) \
            from failures[0][1]
    by_stream: dict[str, list[StreamStats]] = {stream: [] for stream in STREAMS}
    for org_stats in outcomes:
        for stats in org_stats:
            by_stream[stats.stream].append(stats)
    return by_stream


@multi_asset(
    name="drift_streams",
    specs=[AssetSpec(raw_key(table), description=DESCRIPTIONS[table], group_name=RAW_GROUP, owners=OWNERS,
                     kinds={"drift", "duckdb"}, skippable=False)
           for tables in STREAMS.values() for table in tables],
    check_specs=[AssetCheckSpec(scope_check_name(stream), asset=raw_key(stream),
                                description=f"The app holds the optional {STREAM_SCOPES[stream]} scope, so "
                                            f"{stream} were read (a 403 skips the stream: this check names "
                                            "the missing scope).")
                 for stream in STREAMS],
    # Unpartitioned: a range backfill (`--partition-range`) selects it only with this policy.
    backfill_policy=single_run,
    description="Meetings, playbooks and accounts Drift serves now, into raw.* (every run, whatever its days).",
)
def drift_streams(context: AssetExecutionContext, drift: DriftApiResource, duckdb: WarehouseResource):
    by_stream = run_streams(drift, duckdb, _orgs_of_run(context, drift))
    for stream, tables in STREAMS.items():
        all_stats = by_stream[stream]
        missing = {s.org_id: s.missing_scope for s in all_stats if s.missing_scope}
        scope = STREAM_SCOPES[stream]
        if missing:
            context.log.warning(f"{stream} skipped for org(s) {sorted(missing)}: the app lacks the optional "
                                f"{scope} scope (Drift answered 403); the rest of the run goes on")
        for table in tables:
            yield MaterializeResult(asset_key=raw_key(table), metadata={
                "rows_upserted": MetadataValue.int(sum(s.rows.get(table, 0) for s in all_stats)),
                "listed": MetadataValue.int(sum(s.listed for s in all_stats)),
                "api_calls": MetadataValue.int(sum(s.api_calls for s in all_stats)),
                "skipped_missing_scope": MetadataValue.text(scope if missing else ""),
            })
        yield AssetCheckResult(
            check_name=scope_check_name(stream), asset_key=raw_key(stream), passed=not missing,
            severity=AssetCheckSeverity.WARN,
            description=(f"missing scope {scope}: {stream} not read for org(s) "
                         f"{', '.join(str(o) for o in sorted(missing))}") if missing else f"{scope} granted",
            metadata={"missing_scope": scope if missing else "", "orgs_skipped": len(missing)})


@asset_check(asset=raw_key("meeting_changes"),
             description="Every meeting's stored state (slug, updated_at) is recorded as a change.")
def meeting_states_recorded(duckdb: WarehouseResource) -> AssetCheckResult:
    missing = measure(duckdb, stream_checks.unrecorded_meeting_states)
    return AssetCheckResult(passed=missing == 0, metadata={"unrecorded_states": missing})


@asset_check(asset=raw_key("playbook_goals_defined"), description="Every defined goal belongs to a stored playbook.")
def playbook_goals_have_playbook(duckdb: WarehouseResource) -> AssetCheckResult:
    orphans = measure(duckdb, stream_checks.orphan_playbook_goals)
    return AssetCheckResult(passed=orphans == 0, metadata={"orphan_goals": orphans})


stream_asset_checks = [meeting_states_recorded, playbook_goals_have_playbook]
