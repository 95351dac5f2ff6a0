"""The nightly and weekly schedules: one run per tick over a range of days; only the weekly
heal run walks its whole window."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from dagster import build_schedule_context

from drift_pipeline.partitions import FULL_WINDOW_TAG
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.schedules import nightly_drift_sync, weekly_drift_resync


@pytest.fixture(autouse=True)
def _own_home(home):
    """Each tick reads the deployment's state (orgs, disconnect marks) under the home: the
    test's own, never the developer's ./data."""


def _request(schedule, when):
    context = build_schedule_context(scheduled_execution_time=when, resources={"drift": DriftApiResource.from_env()})
    return schedule.evaluate_tick(context).run_requests[0]


def test_nightly_run_resyncs_yesterday_and_today_incrementally():
    request = _request(nightly_drift_sync, datetime(2026, 11, 20, 2, tzinfo=timezone.utc))
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-19"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-20"
    assert FULL_WINDOW_TAG not in request.tags


def test_weekly_heal_run_walks_the_whole_thirty_day_window():
    request = _request(weekly_drift_resync, datetime(2026, 11, 22, 3, tzinfo=timezone.utc))
    assert request.tags["dagster/asset_partition_range_start"] == "2026-10-24"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-22"
    assert request.tags[FULL_WINDOW_TAG] == "true"
