"""The webhook inbox sensor and the job it launches: webhook events in the marts within a minute."""

import hashlib
import json
import time

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from drift_pipeline.assets.dbt import MARTS_GROUP, MODELS_GROUP, REFRESH_CONFIG
from drift_pipeline.assets.serving import REPORT_KEY, SERVING_COPY_KEY
from drift_pipeline.assets.webhooks import INBOX_KEYS
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.webhooks.inbox_files import iter_inbox_files

# A file still in the inbox this long after its run was requested (the run failed or was
# deleted) is requested again; applying is idempotent, so a late duplicate run is harmless.
REDISPATCH_AFTER_SECONDS = 600
DBT_OP = "drift_dbt_models"
WEBHOOK_OP = "webhook_inbox"

# The webhook inbox assets, then the dbt models (run, not tested: the incremental models
# rebuild just what the events touched), then the serving copy: one run, and every
# materialization in it comes from the asset that did the work.
apply_webhooks_job = define_asset_job(
    "apply_webhooks_job",
    selection=(AssetSelection.assets(*INBOX_KEYS)
               | AssetSelection.groups(MODELS_GROUP, MARTS_GROUP)).without_checks()
              | AssetSelection.assets(SERVING_COPY_KEY, REPORT_KEY),
    description="Applies webhook inbox files and refreshes the models (launched by webhook_inbox_sensor).",
    tags={"drift/trigger": "webhook"},
)


def apply_webhooks_run_config(files: list[str]) -> dict:
    """The job's run config: which files triggered it, and the dbt asset in refresh mode."""
    return {"ops": {WEBHOOK_OP: {"config": {"files": files}}, DBT_OP: {"config": dict(REFRESH_CONFIG)}}}


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
    queued = context.instance.get_runs(
        filters=RunsFilter(job_name=apply_webhooks_job.name,
                           statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]),
        limit=1,
    )
    return bool(queued)


# Seconds between the sensor's looks at the inbox: its part of the time from a webhook to the
# serving copy (a look is a directory listing; a run is launched only when files wait). It is
# the pace of the daemon's sensor loop (dagster's MIN_INTERVAL_LOOP_TIME, 5 s): each pass ticks
# every sensor whose minimum interval has elapsed since its last tick. A minimum of 5 s as well
# skipped every pass that came a hair under 5 s after the last tick, so a file waited up to 10 s
# (measured: 8.7 s median); a smaller minimum makes every pass look.
SENSOR_INTERVAL_SECONDS = 5
_MINIMUM_INTERVAL_SECONDS = 1


@sensor(
    job=apply_webhooks_job,
    minimum_interval_seconds=_MINIMUM_INTERVAL_SECONDS,
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
        run_config=apply_webhooks_run_config(due),
        tags={"drift/trigger": "webhook", "drift/inbox_files": str(len(due))},
    )
