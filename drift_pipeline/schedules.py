"""Nightly and weekly syncs, visible and toggleable in the Dagster UI.

Each tick is one run per connected Drift org over a range of daily partitions (single-run
backfill policy, the org in the `drift/org` tag), so each org's conversation list is paged once
per run, not once per day, and one org's failure (say, revoked tokens) leaves the others' runs
green. An org Drift has disconnected the app from (`app_disconnected`) gets no run until
`drift-pipeline auth exchange` re-authorizes it; with none left the tick is skipped with the reason.
"""

from datetime import timedelta

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    OpExecutionContext,
    PartitionsDefinition,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    job,
    op,
    schedule,
)

from drift_pipeline.assets.webhooks import WEBHOOKS_GROUP
from drift_pipeline.partitions import FULL_WINDOW_TAG, ORG_TAG
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.retention import run_retention

SYNC_JOB = "drift_sync_job"


# Every asset but the webhook inbox's: the sensor's job applies those files as they arrive.
SYNC_SELECTION = AssetSelection.all() - AssetSelection.groups(WEBHOOKS_GROUP)


def build_sync_job(partitions_def: PartitionsDefinition):
    """The job the schedules (and the UI's range backfills) run: every asset, one range per run."""
    return define_asset_job(
        SYNC_JOB,
        selection=SYNC_SELECTION,
        partitions_def=partitions_def,
        description="Sync raw Drift tables for a range of days, rebuild the marts, republish the serving copy.",
    )


def range_run_request(first_day, last_day, reason: str, *, full_window: bool = False,
                      org_id: int | None = None) -> RunRequest:
    """One run covering the daily partitions first_day..last_day (inclusive), for one org when
    `org_id` is given. `full_window` walks the whole window's list instead of stopping where
    the last run left off."""
    tags = {
        "dagster/asset_partition_range_start": first_day.isoformat(),
        "dagster/asset_partition_range_end": last_day.isoformat(),
        "drift/trigger": reason,
    }
    if full_window:
        tags[FULL_WINDOW_TAG] = "true"
    org = ""
    if org_id is not None:
        tags[ORG_TAG] = str(org_id)
        org = f"org{org_id}-"
    return RunRequest(run_key=f"{reason}-{org}{first_day.isoformat()}-{last_day.isoformat()}", tags=tags)


def per_org_requests(drift: DriftApiResource, first_day, last_day, reason: str,
                     *, full_window: bool = False) -> list[RunRequest] | SkipReason:
    """One run per connected org (run keys per org and range, so a tick is idempotent); a skip
    when Drift disconnected the app from every org: a run would only fail on its tokens."""
    orgs = drift.orgs()
    if not orgs.connected:
        return SkipReason("sync paused: " + "; ".join(orgs.disconnected.values()))
    return [range_run_request(first_day, last_day, reason, full_window=full_window, org_id=org_id)
            for org_id in orgs.connected]


@schedule(
    cron_schedule="0 2 * * *",
    job_name=SYNC_JOB,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="02:00 UTC: re-sync yesterday and today (the overlap catches late updates) and rebuild the marts.",
)
def nightly_drift_sync(context: ScheduleEvaluationContext, drift: DriftApiResource):
    today = context.scheduled_execution_time.date()
    return per_org_requests(drift, today - timedelta(days=1), today, "nightly")


@schedule(
    cron_schedule="0 3 * * 0",
    job_name=SYNC_JOB,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Sundays 03:00 UTC: re-sync the last 30 days, walking the whole window, to heal anything a nightly run missed.",
)
def weekly_drift_resync(context: ScheduleEvaluationContext, drift: DriftApiResource):
    today = context.scheduled_execution_time.date()
    return per_org_requests(drift, today - timedelta(days=29), today, "weekly", full_window=True)


@op(description="Blank message bodies and transcripts older than DRIFT_RETENTION_DAYS; metrics stay.")
def apply_retention(context: OpExecutionContext, drift: DriftApiResource):
    settings = drift.settings()
    if settings.retention_days is None:
        raise ValueError("DRIFT_RETENTION_DAYS is not set: the retention job needs the number of days to keep")
    result = run_retention(settings, settings.retention_days, trigger="schedule")
    context.log.info(f"retention pass: cutoff {result['cutoff_at']}, counts {result['counts']}")
    return result["counts"]


@job(description="One retention pass (`drift-pipeline retention --days $DRIFT_RETENTION_DAYS`).")
def retention_job():
    apply_retention()


@schedule(
    cron_schedule="0 4 * * 0",
    job=retention_job,
    execution_timezone="UTC",
    # Off until an operator turns it on: deleting message text is a policy decision.
    default_status=DefaultScheduleStatus.STOPPED,
    description="Sundays 04:00 UTC (after the weekly re-sync): blank message text older than DRIFT_RETENTION_DAYS.",
)
def weekly_retention(context: ScheduleEvaluationContext, drift: DriftApiResource):
    days = drift.settings().retention_days
    if days is None:
        return SkipReason("DRIFT_RETENTION_DAYS is not set")
    return RunRequest(run_key=f"retention-{context.scheduled_execution_time.date().isoformat()}",
                      tags={"drift/trigger": "retention", "drift/retention_days": str(days)})


schedules = [nightly_drift_sync, weekly_drift_resync, weekly_retention]
