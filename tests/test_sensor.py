"""The inbox sensor: each file is requested once, across restarts; a file a failed run left behind
is requested again later; the job it launches applies the files and refreshes the marts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from drift_pipeline.resources import DriftApiResource
from drift_pipeline.definitions import build_definitions
from drift_pipeline.marts import refresh_timings
from drift_pipeline.sensors import REDISPATCH_AFTER_SECONDS, apply_webhooks_run_config, plan_dispatch, webhook_inbox_sensor
from drift_pipeline.webhooks.inbox_files import write_events_file

from conftest import SIM_END, query, sync

END = SIM_END.replace(tzinfo=None)


def test_plan_dispatch_requests_each_file_once_then_again_only_when_left_behind():
    due, cursor = plan_dispatch(["a.json", "b.json"], None, now=1000.0)
    assert due == ["a.json", "b.json"]
    due, cursor = plan_dispatch(["a.json", "b.json", "c.json"], cursor, now=1010.0)
    assert due == ["c.json"]
    due, cursor = plan_dispatch(["b.json"], cursor, now=1020.0)  # a and c were applied
    assert due == [] and set(json.loads(cursor)) == {"b.json"}
    due, _ = plan_dispatch(["b.json"], cursor, now=1000.0 + REDISPATCH_AFTER_SECONDS + 1)
    assert due == ["b.json"]


def test_sensor_requests_new_inbox_files_once(home, tmp_path):
    from drift_pipeline.settings import Settings

    settings = Settings.from_env()
    settings.ensure_dirs()
    event = {"type": "conversation_status_updated", "orgId": 1,
             "data": {"conversationId": 5, "status": "closed", "changedAt": 1_763_000_000_000}}
    first = write_events_file(settings.inbox_dir, [event])
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"drift": DriftApiResource.from_env()})
        request = webhook_inbox_sensor(context)
        assert isinstance(request, RunRequest)
        assert request.run_config["ops"]["webhook_inbox"]["config"]["files"] == [first.name]
        context = build_sensor_context(instance=instance, cursor=context.cursor,
                                       resources={"drift": DriftApiResource.from_env()})
        assert isinstance(webhook_inbox_sensor(context), SkipReason)  # a restart with the cursor
        second = write_events_file(settings.inbox_dir, [dict(event, data=dict(event["data"], status="open"))])
        context = build_sensor_context(instance=instance, cursor=context.cursor,
                                       resources={"drift": DriftApiResource.from_env()})
        request = webhook_inbox_sensor(context)
        assert request.run_config["ops"]["webhook_inbox"]["config"]["files"] == [second.name]


@pytest.mark.slow
def test_the_sensor_job_applies_files_refreshes_marts_and_republishes(sim_env, synced):
    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
    conversation_id = next(cid for cid, c in simulator.world.conversations.items() if c["status"] == "open")
    payloads = simulator.world.set_status(conversation_id, "closed", at_ms=simulator.world.now_ms + 1000)
    path = write_events_file(settings.inbox_dir, payloads)
    job = build_definitions(settings).resolve_job_def("apply_webhooks_job")
    result = job.execute_in_process(run_config=apply_webhooks_run_config([path.name]))
    assert result.success
    applied = result.asset_materializations_for_node("webhook_inbox")
    events = next(m for m in applied if m.asset_key.to_user_string() == "raw/webhook_events")
    assert events.metadata["events_applied"].value == 1 and events.metadata["files_applied"].value == 1
    assert (settings.processed_dir / path.name).exists()
    # The marts' materializations come from dbt's own events, in the same run, after the apply.
    built = {m.asset_key.to_user_string() for m in result.asset_materializations_for_node("drift_dbt_models")}
    assert {"marts/fct_conversations", "marts/agg_daily_metrics", "marts/agg_agent_daily"} <= built
    checks = {(c.asset_key.to_user_string(), c.check_name, c.passed) for c in result.get_asset_check_evaluations()}
    # The models' data tests are not run on this seconds-sensitive path; the serving assets
    # check what they published.
    assert checks == {("serving/analytics", "serving_copy_matches_marts", True),
                      ("serving/report", "report_has_charts", True)}, "the webhook refresh runs the models, not their tests"
    # dbt ran in the run's own process (no dbt process to start), and let go of the warehouse:
    # another process can open it for writing at once.
    assert [t["dbt_in_process"] for t in _timings(settings) if t["kind"] == "marts"] == [True]
    opened = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('select 1')",
                             str(settings.warehouse_path)], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr
    import duckdb

    serving = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:
        assert serving.execute("SELECT status FROM marts.fct_conversations WHERE conversation_id = ?",
                               [conversation_id]).fetchall() == [("closed",)]
    finally:
        serving.close()


def _timings(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.home / "logs" / "timings.jsonl").read_text().splitlines()]


def test_refresh_timings_join_the_dbt_steps_line_with_its_runs_publish():
    from drift_pipeline.marts import publish_timing_record, refresh_timings, timing_record

    records = [timing_record("refresh", "run-1", 100.0, 104.5, None), {"kind": "apply", "run_id": "run-1"},
               publish_timing_record("run-1", 104.6, 105.35), timing_record("build", "run-2", 200.0, 230.0, None)]
    joined = refresh_timings(records)
    assert [(r["run_id"], r["published"], r["finished_at"], r["publish_seconds"]) for r in joined] == [
        ("run-1", True, 105.35, 0.75), ("run-2", False, 230.0, None)]
    assert joined[0]["dbt_seconds"] == 4.5 and joined[0]["started_at"] == 100.0


def test_marts_timing_record_says_which_mode_and_where_the_seconds_went():
    from drift_pipeline.assets.dbt import DbtModelsConfig, marts_timing_record

    refresh = marts_timing_record(DbtModelsConfig(data_tests=False), "run-1",
                                  started=100.0, dbt_done=104.5, published=105.25, views_kept=True)
    assert refresh == {"kind": "marts", "mode": "refresh", "run_id": "run-1", "views_kept": True, "dbt_in_process": False,
                       "started_at": 100.0, "finished_at": 105.25, "dbt_seconds": 4.5,
                       "publish_seconds": 0.75, "published": True}
    unpublished = marts_timing_record(DbtModelsConfig(full_refresh=True), "run-2", 100.0, 130.0, None)
    assert unpublished["mode"] == "full-refresh" and unpublished["finished_at"] == 130.0
    assert unpublished["published"] is False and unpublished["publish_seconds"] is None
    assert marts_timing_record(DbtModelsConfig(), "r", 0, 1, 2)["mode"] == "build"
    assert marts_timing_record(DbtModelsConfig(full_tests=True), "r", 0, 1, 2)["mode"] == "full-tests"


@pytest.mark.slow
def test_the_sensor_job_logs_its_stages_and_creates_the_views_only_when_they_changed(sim_env, synced):
    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
    job = build_definitions(settings).resolve_job_def("apply_webhooks_job")
    open_ids = [cid for cid, c in simulator.world.conversations.items() if c["status"] == "open"]
    results = []
    for conversation_id in open_ids[:2]:
        payloads = simulator.world.set_status(conversation_id, "closed", at_ms=simulator.world.now_ms + 1000)
        path = write_events_file(settings.inbox_dir, payloads)
        results.append(job.execute_in_process(run_config=apply_webhooks_run_config([path.name])))
        assert results[-1].success
    applies = [t for t in _timings(settings) if t["kind"] == "apply"]
    marts = refresh_timings(_timings(settings))  # the dbt step's line joined with its publish
    assert len(applies) == 2 and len(marts) == 2
    for apply, refresh, result in zip(applies, marts, results):
        assert refresh["mode"] == "refresh" and refresh["published"] and refresh["run_id"] == result.run_id
        # The refresh follows the apply pass of its run; the serving copy is in place at its end.
        assert apply["finished_at"] <= refresh["started_at"] <= refresh["finished_at"]
        assert refresh["dbt_seconds"] > 0 and refresh["publish_seconds"] > 0
        assert refresh["dbt_seconds"] + refresh["publish_seconds"] <= (
            refresh["finished_at"] - refresh["started_at"] + 0.01)
        assert set(apply["stage_seconds"]) <= {"read", "erase", "fetch", "write", "move"}
    # The first refresh creates the views (none recorded yet); the second leaves them alone,
    # and its marts still come from dbt's own events and show the change.
    assert [m["views_kept"] for m in marts] == [False, True]
    built = [{m.asset_key.to_user_string() for m in r.asset_materializations_for_node("drift_dbt_models")}
             for r in results]
    assert "staging/stg_drift__conversations" in built[0]
    assert not any(key.startswith("staging/") for key in built[1])
    assert {"marts/fct_conversations", "marts/agg_daily_metrics"} <= built[1]
    import duckdb

    serving = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:
        assert serving.execute("SELECT status FROM marts.fct_conversations WHERE conversation_id = ?",
                               [open_ids[1]]).fetchall() == [("closed",)]
    finally:
        serving.close()


def test_dbt_failing_in_process_reports_its_errors_and_frees_the_warehouse(sim_env):
    """The webhook refresh runs dbt in the run's process: a model that fails there must come
    back as dbt's own error, and the warehouse must be closed all the same."""
    from drift_pipeline.dbt_project import dbt_profile_vars, dbt_run_dir, run_dbt_in_process

    _, settings = sim_env
    sync(settings, END - timedelta(days=1), END)
    result = run_dbt_in_process(
        ["run", "--full-refresh", "--select", "+int_drift__business_hours_first_response",
         "--vars", json.dumps({**dbt_profile_vars(settings), "business_hours_timezone": "Nowhere/Atlantis"})],
        dbt_run_dir(settings, "fails"))
    assert not result.success
    assert any("Atlantis" in error for error in result.errors), result.errors
    assert any(e["info"]["name"] == "NodeFinished" for e in result.events)
    opened = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('select 1')",
                             str(settings.warehouse_path)], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr
