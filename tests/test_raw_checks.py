"""The raw assets' checks, called as Dagster calls them, on a warehouse with known rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster import AssetCheckSeverity
from dagster_duckdb import DuckDBResource

from drift_pipeline.assets.drift_raw import conversations_fresh
from drift_pipeline.resources import warehouse_connection


def _warehouse_with_newest_update(tmp_path, hours_ago: float) -> DuckDBResource:
    duckdb = DuckDBResource(database=str(tmp_path / "warehouse.duckdb"))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse_connection(duckdb) as conn:
        conn.execute("INSERT INTO raw.conversations (org_id, conversation_id, updated_at) VALUES "
                     "(1, 1, ?), (1, 2, ?)", [now - timedelta(hours=hours_ago), now - timedelta(days=9)])
    return duckdb


def test_conversations_fresh_passes_when_the_newest_update_is_within_36_hours(tmp_path):
    result = conversations_fresh(duckdb=_warehouse_with_newest_update(tmp_path, 30))
    assert result.passed is True
    assert 29.9 < result.metadata["hours_since_newest_update"].value < 30.1


def test_conversations_fresh_warns_when_the_newest_update_is_older_than_36_hours(tmp_path):
    result = conversations_fresh(duckdb=_warehouse_with_newest_update(tmp_path, 40))
    assert result.passed is False and result.severity == AssetCheckSeverity.WARN
    assert 39.9 < result.metadata["hours_since_newest_update"].value < 40.1


def test_conversations_fresh_fails_on_an_empty_warehouse(tmp_path):
    result = conversations_fresh(duckdb=DuckDBResource(database=str(tmp_path / "warehouse.duckdb")))
    assert result.passed is False and result.metadata["hours_since_newest_update"].value == -1.0
