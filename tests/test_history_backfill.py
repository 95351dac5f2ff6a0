"""Years of history through what `sync` runs: a backfill starting 2024-02-24 (before the old
hard-coded first partition) builds raw and marts, and a multi-year range is one Dagster run
whose tags, labels and events do not grow with the number of days."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone

import pytest

from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ms_to_ts

from conftest import query, run_days

pytestmark = pytest.mark.slow
RAW_TABLES = ("conversations", "messages", "participants", "users", "contacts", "status_events")


def _point_at(simulator, server, monkeypatch) -> None:
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)


def _the_only_run(settings: Settings):
    """The run recorded in the home's Dagster instance, and its event records."""
    from drift_pipeline.instance import open_instance

    with open_instance(settings) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1, [r.run_id for r in runs]
        return runs[0], instance.all_logs(runs[0].run_id)


def test_backfill_starting_2024_02_24_builds_raw_and_marts(home, dbt_parse_seed, make_simulator, monkeypatch):
    end = datetime(2024, 3, 2, tzinfo=timezone.utc)
    simulator, server = make_simulator(seed=5, days=7, conversations_per_day=15, end=end,
                                       rate_limit_per_minute=60_000)
    _point_at(simulator, server, monkeypatch)
    monkeypatch.delenv("DRIFT_HISTORY_START", raising=False)  # the default reaches back to 2015
    settings = Settings.from_env()

    run_days(settings, date(2024, 2, 24), date(2024, 3, 2))

    list_from = datetime(2024, 2, 24) - timedelta(minutes=settings.overlap_minutes)
    expected = {c["id"] for c in simulator.world.conversations.values()
                if list_from <= ms_to_ts(c["updatedAt"]) < end.replace(tzinfo=None)}
    stored = {row[0] for row in query(settings, "SELECT conversation_id FROM raw.conversations")}
    assert len(expected) >= 7 * 15 and stored == expected
    days = [row[0] for row in query(settings, "SELECT metric_date FROM marts.agg_daily_metrics ORDER BY 1")]
    assert days == [date(2024, 2, 24) + timedelta(days=i) for i in range(7)]
    assert query(settings, "SELECT count(*) FROM marts.fct_conversations")[0][0] == len(expected)
    assert query(settings, "SELECT success, partition_keys FROM raw.exports") == [
        (True, "2024-02-24...2024-03-01 (7 days)")]
    run, _ = _the_only_run(settings)
    assert run.status.value == "SUCCESS"
    assert (settings.serving_dir / "analytics.duckdb").exists()


@pytest.mark.timeout(1200)
def test_a_two_year_backfill_is_one_run_that_stays_small_in_the_event_log(home, dbt_parse_seed, make_simulator,
                                                                          monkeypatch):
    from dagster import AssetKey, DagsterEventType

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    today = now.date()
    first = today - timedelta(days=730)
    # Two years of partitions, data in the last three days only: the cost measured is Dagster's.
    simulator, server = make_simulator(seed=9, days=3, conversations_per_day=5, end=now,
                                       rate_limit_per_minute=60_000)
    _point_at(simulator, server, monkeypatch)
    monkeypatch.setenv("DRIFT_HISTORY_START", first.isoformat())
    settings = Settings.from_env()

    run_days(settings, first, today + timedelta(days=1))

    partitions = 731
    label = f"{first}...{today} ({partitions} days)"
    # One sync job: one pass over the list for the whole window, labelled, not listed.
    assert query(settings, "SELECT success, partition_keys, pages FROM raw.exports") == [(True, label, 1)]
    assert query(settings, "SELECT count(*) FROM marts.fct_conversations")[0][0] == 15

    run, records = _the_only_run(settings)
    assert run.status.value == "SUCCESS"
    assert run.tags["dagster/asset_partition_range_start"] == first.isoformat()
    assert run.tags["dagster/asset_partition_range_end"] == today.isoformat()
    assert len(json.dumps(run.tags)) < 1000

    events = [r.dagster_event for r in records if r.dagster_event]
    by_asset: dict[AssetKey, list] = {}
    for event in events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            by_asset.setdefault(event.asset_key, []).append(event)
    # Each raw table: one materialization per day, each carrying three small values.
    for table in RAW_TABLES:
        materializations = by_asset[AssetKey(["raw", table])]
        assert len(materializations) == partitions
        metadata = materializations[0].step_materialization_data.materialization.metadata
        assert set(metadata) == {"rows_upserted", "partitions", "job_id"}
        assert metadata["partitions"].value == label
    # The marts are whole tables: one materialization each, whatever the range.
    assert len(by_asset[AssetKey(["marts", "fct_conversations"])]) == 1
    # Announced once per asset with the range, not once per asset per day.
    planned = [e for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    assert len(planned) == len(by_asset)
    # Each check ran once and has one record, not one left `PLANNED` per day of the range.
    from drift_pipeline.instance import open_instance

    with open_instance(settings) as instance:
        checks = {e.event_specific_data.asset_check_key for e in events
                  if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION}
        assert len(checks) > 50
        for check_key in checks:
            history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=5)
            assert [record.status.value for record in history] == ["SUCCEEDED"], check_key
