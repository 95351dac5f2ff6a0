"""Webhook inbox assets: the files the receiver dropped, applied to the raw tables.

The sensor (`sensors.py`) launches `apply_webhooks_job`, which materializes these assets and
then the dbt models downstream of them, so every mart materialization in the UI comes from
dbt itself, exactly as on a scheduled run.
"""

from dagster import AssetExecutionContext, AssetKey, AssetSpec, Config, MaterializeResult, MetadataValue, multi_asset

from drift_pipeline.assets.drift_raw import OWNERS
from drift_pipeline.partitions import single_run
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.webhooks.apply import apply_inbox

WEBHOOKS_GROUP = "drift_webhooks"
WEBHOOK_EVENTS_KEY = AssetKey(["raw", "webhook_events"])
WIDGET_EVENTS_KEY = AssetKey(["raw", "widget_events"])
PLAYBOOK_GOALS_KEY = AssetKey(["raw", "playbook_goals"])
# Everything `webhook_inbox` materializes: a job selects all of them or none.
INBOX_KEYS = (WEBHOOK_EVENTS_KEY, WIDGET_EVENTS_KEY, PLAYBOOK_GOALS_KEY)
# The raw tables the apply pass writes besides its own log: a model reading them is also
# downstream of the webhook events (the dbt translator adds that dependency).
WEBHOOK_FED_SOURCES = frozenset({"conversations", "messages", "status_events", "meetings", "meeting_changes",
                                 "playbook_goals"})


class ApplyInboxConfig(Config):
    files: list[str] = []  # the inbox files that triggered the run (it applies all waiting ones)


@multi_asset(
    name="webhook_inbox",
    specs=[
        AssetSpec(WEBHOOK_EVENTS_KEY, group_name=WEBHOOKS_GROUP, owners=OWNERS, kinds={"drift", "duckdb"},
                  description="Webhook events applied from $DRIFT_PIPELINE_HOME/inbox, once per event "
                              "id: the conversations they touch are re-fetched into raw.conversations, "
                              "raw.messages and raw.status_events; contacts, erasures and disconnects "
                              "are applied as they arrive.", skippable=False),
        AssetSpec(WIDGET_EVENTS_KEY, group_name=WEBHOOKS_GROUP, owners=OWNERS, kinds={"duckdb"},
                  description="Widget events sites forwarded (POST /widget-events), filtered, once per id.",
                  skippable=False),
        AssetSpec(PLAYBOOK_GOALS_KEY, group_name=WEBHOOKS_GROUP, owners=OWNERS, kinds={"drift", "duckdb"},
                  description="playbook_goal_met webhooks, one row per event id (playbook, goal, "
                              "conversation, contact); new_meeting webhooks go to raw.meetings.",
                  skippable=False),
    ],
    description="Apply every waiting webhook inbox file (the receiver's output) to the raw tables.",
    # Unpartitioned; Dagster's CLI takes a --partition-range over a selection (`--select *`)
    # only when every selected asset has this policy.
    backfill_policy=single_run,
)
def webhook_inbox(context: AssetExecutionContext, config: ApplyInboxConfig, drift: DriftApiResource):
    # Everything waiting, not only the files this run was requested for: runs queue behind each
    # other (one writer), so the first to start takes the backlog and the rest find little to do.
    result = apply_inbox(drift.settings())
    summary = result.as_dict()
    context.log.info(f"applied webhook files: {summary}")
    if result.files_quarantined:
        context.log.warning(f"quarantined: {result.quarantined}")
    if result.files_waiting:
        context.log.warning(f"{len(result.files_waiting)} inbox file(s) wait for `drift-pipeline auth "
                            f"exchange`: Drift disconnected the app from their workspace")
    yield MaterializeResult(asset_key=WEBHOOK_EVENTS_KEY, metadata={
        "files_applied": MetadataValue.int(result.files_applied),
        "events_applied": MetadataValue.int(result.events_applied),
        "events_duplicate": MetadataValue.int(result.events_duplicate),
        # Of those, untimed status or participant events sent again: their conversation re-fetched.
        "events_repeated": MetadataValue.int(result.events_repeated),
        "conversations_refetched": MetadataValue.int(result.conversations_refetched),
        "files_quarantined": MetadataValue.int(result.files_quarantined),
        "touched_days": MetadataValue.text(", ".join(summary["touched_days"])),
    })
    yield MaterializeResult(asset_key=WIDGET_EVENTS_KEY, metadata={
        "events_applied": MetadataValue.int(result.widget_events_applied)})
    yield MaterializeResult(asset_key=PLAYBOOK_GOALS_KEY, metadata={
        "events_applied": MetadataValue.int(result.playbook_goals_met),
        "meetings_stored": MetadataValue.int(result.meetings_stored)})
