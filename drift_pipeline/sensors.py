"""The webhook inbox sensor and the job it launches: webhook events in the marts within a minute."""

import hashlib
import json
import time

from dagster import (
    AssetKey,
    AssetMaterialization,
    Config,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)

from drift_pipeline.marts import refresh_marts
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.webhooks.apply import apply_inbox
from drift_pipeline.webhooks.inbox import iter_inbox_files

# A file still in the inbox this long after its run was requested (the run failed or was
# deleted) is requested again; applying is idempotent, so a late duplicate run is harmless.
REDISPATCH_AFTER_SECONDS = 600
MART_KEYS = [AssetKey(["marts", name]) for name in ("fct_conversations", "agg_daily_metrics", "agg_agent_daily")]


class ApplyInboxConfig(Config):
    files: list[str] = []  # the inbox files that triggered the run (it applies all waiting ones)


@op(description="Apply dropped webhook files, refresh the affected marts' rows, republish the serving copy.")
def apply_webhook_files(context: OpExecutionContext, config: ApplyInboxConfig, drift: DriftApiResource):
    settings = drift.settings()
    # Everything waiting, not only the files this run was requested for: runs queue behind each
    # other (one writer), so the first to start takes the backlog and the rest find little to do.
    result = apply_inbox(settings)
    summary = result.as_dict()
    context.log.info(f"applied webhook files: {summary}")
    if result.events_applied or result.contacts_erased:
        refresh_marts(settings)
        for day in sorted(result.touched_days):
            for table in ("conversations", "messages", "status_events"):
                context.log_event(AssetMaterialization(
                    asset_key=AssetKey(["raw", table]), partition=day.isoformat(),
                    description="webhook events applied", metadata={"source": "webhook"}))
        for key in MART_KEYS:
            context.log_event(AssetMaterialization(
                asset_key=key, description="refreshed after webhook events",
                metadata={"events_applied": result.events_applied,
                          "conversations_refetched": result.conversations_refetched}))
    if result.files_quarantined:
        context.log.warning(f"quarantined: {result.quarantined}")
    if result.files_waiting:
        context.log.warning(f"{len(result.files_waiting)} inbox file(s) wait for `drift-pipeline auth "
                            f"exchange`: Drift disconnected the app from their workspace")
    return summary


@job(description="Applies webhook inbox files (launched by webhook_inbox_sensor).")
def apply_webhooks_job():
    apply_webhook_files()


def plan_dispatch(waiting: list[str], cursor: str | None, now: float) -> tuple[list[str], str]:
    """Which waiting files to request a run for, and the new cursor ({file: requested_at})."""
    requested = json.loads(cursor) if cursor else {}
    requested = {name: at for name, at in requested.items() if name in set(waiting)}
    due = [name for name in waiting
           if name not in requested or now - requested[name] > REDISPATCH_AFTER_SECONDS]
    for name in due:
        requested[name] = now
    return due, json.dumps(requested, sort_keys=True)


def _run_waiting_to_start(context: SensorEvaluationContext) -> bool:
    from dagster import DagsterRunStatus, RunsFilter

    queued = context.instance.get_runs(
        filters=RunsFilter(job_name=apply_webhooks_job.name,
                           statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]),
        limit=1,
    )
    return bool(queued)


# Seconds between the sensor's looks at the inbox: its part of the time from a webhook to the
# serving copy (a look is a directory listing; a run is launched only when files wait).
SENSOR_INTERVAL_SECONDS = 5


@sensor(
    job=apply_webhooks_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description=f"Every {SENSOR_INTERVAL_SECONDS} s: launches a run for webhook files waiting in "
                "$DRIFT_PIPELINE_HOME/inbox.",
)
def webhook_inbox_sensor(context: SensorEvaluationContext, drift: DriftApiResource):

    waiting = [p.name for p in iter_inbox_files(drift.settings().inbox_dir)]
    now = time.time()
    due, cursor = plan_dispatch(waiting, context.cursor, now)
    if due and _run_waiting_to_start(context):
        # A queued run will apply every file waiting when it starts: no need for another.
        return SkipReason(f"{len(due)} new inbox file(s) will be applied by the queued run")
    context.update_cursor(cursor)
    if not due:
        return SkipReason(f"{len(waiting)} inbox file(s) waiting, none due")
    run_key = hashlib.sha256(json.dumps([due, int(now)]).encode()).hexdigest()[:20]
    return RunRequest(
        run_key=run_key,
        run_config={"ops": {"apply_webhook_files": {"config": {"files": due}}}},
        tags={"drift/trigger": "webhook", "drift/inbox_files": str(len(due))},
    )
