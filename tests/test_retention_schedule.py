"""The weekly retention schedule is off by default, skips without DRIFT_RETENTION_DAYS, and its
job runs one audited retention pass."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
from dagster import DefaultScheduleStatus, build_schedule_context

from drift_pipeline.resources import DriftApiResource
from drift_pipeline.schedules import retention_job, weekly_retention
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.schema import create_raw_schema

SUNDAY = datetime(2026, 11, 22, 4, tzinfo=timezone.utc)


def test_the_retention_schedule_is_stopped_until_an_operator_turns_it_on():
    assert weekly_retention.default_status == DefaultScheduleStatus.STOPPED


def test_without_retention_days_the_tick_skips(home):
    result = weekly_retention.evaluate_tick(build_schedule_context(scheduled_execution_time=SUNDAY, resources={"drift": DriftApiResource.from_env()}))
    assert not result.run_requests and "DRIFT_RETENTION_DAYS" in result.skip_message


def test_the_scheduled_job_blanks_old_bodies_and_records_the_pass(home, monkeypatch):
    monkeypatch.setenv("DRIFT_RETENTION_DAYS", "30")
    request = weekly_retention.evaluate_tick(build_schedule_context(scheduled_execution_time=SUNDAY, resources={"drift": DriftApiResource.from_env()})).run_requests[0]
    assert request.tags["drift/retention_days"] == "30"

    settings = Settings.from_env()
    settings.ensure_dirs()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    conn = duckdb.connect(str(settings.warehouse_path))
    create_raw_schema(conn)
    for message_id, age_days in ((1, 45), (2, 5)):
        conn.execute("INSERT INTO raw.messages (org_id, conversation_id, message_id, created_at, message_type, "
                     "author_type, body) VALUES (7, 1, ?, ?, 'chat', 'contact', ?)",
                     [message_id, now - timedelta(days=age_days), f"<p>body {message_id}</p>"])
    conn.close()

    assert retention_job.execute_in_process(resources={"drift": DriftApiResource.from_env()}).success
    conn = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        assert conn.execute("SELECT message_id, body FROM raw.messages ORDER BY 1").fetchall() == [
            (1, None), (2, "<p>body 2</p>")]
        kind, trigger, days, counts = conn.execute(
            "SELECT kind, trigger, retention_days, counts FROM raw.erasures").fetchall()[0]
    finally:
        conn.close()
    assert (kind, trigger, days) == ("retention", "schedule", 30)
    assert json.loads(counts)["raw.messages.body"] == 1
