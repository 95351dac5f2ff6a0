"""Nightly and weekly syncs, visible and toggleable in the Dagster UI.

Each tick is one run over a range of daily partitions (single-run backfill policy), so the
conversation list is paged once per run, not once per day. While Drift has disconnected the app
from the workspace (`app_disconnected`), ticks are skipped with the reason until
`drift-pipeline auth exchange` re-authorizes it.
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
from drift_pipeline.drift.auth import disconnection_reason
from drift_pipeline.partitions import FULL_WINDOW_TAG
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


def range_run_request(first_day, last_day, reason: str, *, full_window: bool = False) -> RunRequest:
    """One run covering the daily partitions first_day..last_day (inclusive). `full_window`
    walks the whole window's list instead of stopping where the last run left off."""
    tags = {
        "dagster/asset_partition_range_start": first_day.isoformat(),
        "dagster/asset_partition_range_end": last_day.isoformat(),
        "drift/trigger": reason,
    }
    if full_window:
        tags[FULL_WINDOW_TAG] = "true"
    return RunRequest(run_key=f"{reason}-{first_day.isoformat()}-{last_day.isoformat()}", tags=tags)


def paused_reason(drift: DriftApiResource) -> SkipReason | None:
    """A skip while the workspace's app is disconnected: a run would only fail on its tokens."""
    reason = disconnection_reason(drift.settings())
    return SkipReason(f"sync paused: {reason}") if reason else None


@schedule(
    cron_schedule="0 2 * * *",
    job_name=SYNC_JOB,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="02:00 UTC: re-sync yesterday and today (the overlap catches late updates) and rebuild the marts.",
)
def nightly_drift_sync(context: ScheduleEvaluationContext, drift: DriftApiResource):
    paused = paused_reason(drift)
    if paused is not None:
        return paused
    today = context.scheduled_execution_time.date()
    return range_run_request(today - timedelta(days=1), today, "nightly")


@schedule(
    cron_schedule="0 3 * * 0",
    job_name=SYNC_JOB,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Sundays 03:00 UTC: re-sync the last 30 days, walking the whole window, to heal anything a nightly run missed.",
)
def weekly_drift_resync(context: ScheduleEvaluationContext, drift: DriftApiResource):
    paused = paused_reason(drift)
    if paused is not None:
        return paused
    today = context.scheduled_execution_time.date()
    return range_run_request(today - timedelta(days=29), today, "weekly", full_window=True)


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
