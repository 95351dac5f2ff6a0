"""An asset check on the marts: do our numbers match Drift's own reports?

After a sync's dbt build, `fct_conversations_matches_drift_reports` asks
`POST /reports/conversations` (its own 60/min budget, one call per day of the window) for each
org's latest synced window and compares first close, time to close, first agent message and
time to agent response conversation by conversation (`drift_pipeline/reconcile.py`). The
webhook job and the CLI's marts refreshes leave it out (`without_checks()`), so only syncs call
the reports; a deployment without Drift credentials skips it without a call.
"""

import asyncio

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from drift_pipeline import reconcile
from drift_pipeline.drift.auth import auth_from_settings
from drift_pipeline.drift.errors import DriftConfigError, DriftError
from drift_pipeline.drift.orgs import OrgClients
from drift_pipeline.resources import DriftApiResource, WarehouseResource, warehouse_connection
from drift_pipeline.timeutil import ts_to_ms

FCT_CONVERSATIONS_KEY = AssetKey(["marts", "fct_conversations"])
CHECK_NAME = "matches_drift_reports"


def _credentials_missing(settings) -> str | None:
    try:
        auth_from_settings(settings)
    except DriftConfigError as exc:
        return exc.message
    return None


def orgs_to_check(drift: DriftApiResource) -> set[int] | None:
    """The orgs whose tokens this deployment may use now: the token store's connected orgs, or
    the one org of a static token (remembered by the sync; None: whichever single org the
    warehouse's syncs name). Disconnected orgs are left out: no call is made with their tokens."""
    connected = drift.orgs().connected
    if connected == [None]:
        known = drift.known_org_id()
        return None if known is None else {known}
    return {org for org in connected if org is not None}


def reconcile_with_drift(settings, duckdb, org_ids: set[int] | None = None) -> reconcile.Reconciliation:
    """Each org's latest synced window asked of Drift's reports and compared with the marts
    (`org_ids`: those orgs only; None: the one org the syncs name, if only one). Raises
    DriftError when Drift does not answer.

    Window by window (a day each): what one day's answer names is compared and let go before
    the next call, so memory follows a day of conversations, not the whole window."""
    with warehouse_connection(duckdb) as conn:
        syncs = reconcile.latest_sync_windows(conn)
        windows = {org: reconcile.check_window(start, end, started) for org, (start, end, started) in syncs.items()}
        if org_ids is None and len(windows) > 1:
            windows = {}  # a token that names no org cannot say which of several it belongs to
        windows = {org: w for org, w in windows.items() if w is not None and (org_ids is None or org in org_ids)}

        async def one_org(client, org: int, start, end) -> reconcile.Reconciliation:
            started = syncs[org][2]
            label = f"org {org}: updatedAt [{start.isoformat()}, {end.isoformat()})"
            result = reconcile.Reconciliation(windows=[label])
            reported: set[int] = set()
            # Drift's BETWEEN includes its end; the window [start, end) does not.
            for low, high in reconcile.report_windows(ts_to_ms(start), ts_to_ms(end) - 1):
                rows, calls = await reconcile.fetch_reports(client.conversation_report, low, high)
                # No await from here to the next call: the orgs share this connection safely.
                one = reconcile.compare(org, rows, reconcile.load_ours(conn, org, sorted(rows)),
                                        lambda ids: reconcile.load_raw(conn, org, ids),
                                        ts_to_ms(started) if started is not None else None)
                one.report_calls = calls
                result.merge(one)
                reported.update(rows)
            result.ours_not_reported = len(reconcile.ours_updated_in(conn, org, start, end) - reported)
            return result

        async def all_orgs():
            async with OrgClients(settings) as clients:
                # Side by side: each org has its own client and its own reports budget.
                return await asyncio.gather(*(one_org(clients.for_org(org), org, start, end)
                                              for org, (start, end) in windows.items()))

        total = reconcile.Reconciliation()
        for one in asyncio.run(all_orgs()) if windows else []:
            total.merge(one)
    return total


@multi_asset_check(
    name="fct_conversations_matches_drift_reports",
    specs=[AssetCheckSpec(
        CHECK_NAME, asset=FCT_CONVERSATIONS_KEY,
        description="First close, time to close, first agent message and time to agent response agree with "
                    "Drift's POST /reports/conversations for the latest synced window, conversation by "
                    "conversation, or differ for a reason the DECISIONLOG records (warns under 99%).")],
    # Without Drift credentials the check yields nothing: Dagster shows it skipped.
    can_subset=True,
)
def fct_conversations_matches_drift_reports(context: AssetCheckExecutionContext, drift: DriftApiResource,
                                            duckdb: WarehouseResource):
    settings = drift.settings()
    missing = _credentials_missing(settings)
    if missing:
        context.log.info(f"{CHECK_NAME} skipped: {missing}")
        return
    try:
        result = reconcile_with_drift(settings, duckdb, orgs_to_check(drift))
    except DriftError as exc:
        # The data is committed and the marts built: a reports outage warns, it fails no run.
        yield AssetCheckResult(check_name=CHECK_NAME, asset_key=FCT_CONVERSATIONS_KEY, passed=False,
                               severity=AssetCheckSeverity.WARN,
                               metadata={"error": MetadataValue.text(f"{exc.code}: {exc.message}")})
        return
    summary = reconcile.metadata(result)
    yield AssetCheckResult(
        check_name=CHECK_NAME, asset_key=FCT_CONVERSATIONS_KEY, passed=result.passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "agreement_table": MetadataValue.md(_agreement_markdown(summary["agreement"])),
            "agreement": MetadataValue.json(summary["agreement"]),
            "reasons": MetadataValue.json(summary["reasons"]),
            "unexplained": MetadataValue.int(summary["unexplained"]),
            "unexplained_ids": MetadataValue.json(summary["unexplained_ids"]),
            "differences": MetadataValue.json(summary["differences"]),
            "reported_conversations": MetadataValue.int(summary["reported_conversations"]),
            "ours_not_in_report": MetadataValue.int(summary["ours_not_in_report"]),
            "report_calls": MetadataValue.int(summary["report_calls"]),
            "windows": MetadataValue.json(summary["windows"]),
        },
    )


def _agreement_markdown(agreement: dict) -> str:
    lines = ["| metric | compared | matched | explained | unexplained | matched % | agree or explained % |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {metric} | {a['compared']} | {a['matched']} | {a['explained']} | {a['unexplained']} | "
              f"{'' if a['matched_pct'] is None else a['matched_pct']} | {a['agree_or_explained_pct']} |"
              for metric, a in agreement.items()]
    return "\n".join(lines)


drift_report_checks = [fct_conversations_matches_drift_reports]
