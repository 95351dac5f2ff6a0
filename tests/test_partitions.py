"""The daily partitions: their first day comes from DRIFT_HISTORY_START, ranges are checked
before Dagster starts, and a range is named by one short label."""

from __future__ import annotations

from datetime import date

import pytest

from drift_pipeline.partitions import PartitionRangeError, check_day_range, daily_partitions, range_label
from drift_pipeline.settings import Settings

TODAY = date(2026, 12, 1)


def test_partitions_start_on_the_history_start_and_end_today():
    keys = daily_partitions(date(2024, 2, 24)).get_partition_keys()
    assert keys[0] == "2024-02-24"
    assert len(keys) > 1000  # years of history, today's partition included


def test_every_asset_and_the_sync_job_share_the_configured_partitions(home, monkeypatch):
    from dagster import AssetKey

    from drift_pipeline.definitions import build_definitions

    monkeypatch.setenv("DRIFT_HISTORY_START", "2016-03-01")
    defs = build_definitions(Settings.from_env())
    graph = defs.resolve_asset_graph()
    # The sync's six tables (raw/webhook_events, raw/widget_events and raw/playbook_goals are
    # the inbox path's; meetings, playbooks and accounts follow Drift's clock: unpartitioned).
    streams = ("meetings", "meeting_changes", "playbooks", "playbook_goals_defined", "accounts")
    for table in streams:
        assert graph.get(AssetKey(["raw", table])).partitions_def is None
    raw = [key for key in graph.get_all_asset_keys()
           if key.path[0] == "raw" and key.path[1] not in ("webhook_events", "widget_events", "playbook_goals",
                                                           *streams)]
    assert len(raw) == 6
    for key in raw:
        assert graph.get(key).partitions_def.get_first_partition_key() == "2016-03-01"
    assert defs.resolve_job_def("drift_sync_job").partitions_def.get_first_partition_key() == "2016-03-01"
    assert not home.exists()  # loading the definitions creates nothing under the home


def test_a_range_inside_the_partitions_passes():
    check_day_range(date(2015, 1, 1), date(2015, 1, 1), date(2026, 12, 2), today=TODAY)


@pytest.mark.parametrize("start, end, words", [
    (date(2014, 12, 31), date(2015, 1, 2), "DRIFT_HISTORY_START"),
    (date(2026, 11, 1), date(2026, 12, 3), "after tomorrow"),
    (date(2026, 11, 2), date(2026, 11, 2), "must be after"),
])
def test_a_range_outside_the_partitions_is_refused(start, end, words):
    with pytest.raises(PartitionRangeError, match=words):
        check_day_range(date(2015, 1, 1), start, end, today=TODAY)


def test_a_range_is_labelled_by_its_ends_and_length_not_listed():
    keys = daily_partitions(date(2023, 1, 1)).get_partition_keys()[:1096]
    assert range_label(keys) == "2023-01-01...2025-12-31 (1096 days)"
    assert range_label(["2024-02-24"]) == "2024-02-24"
    assert range_label([]) == ""
