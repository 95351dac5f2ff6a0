"""The daily UTC partitions every Drift asset shares, and the ranges a run may cover."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Sequence

from dagster import BackfillPolicy, DailyPartitionsDefinition

from drift_pipeline.settings import UsageError

# A range of days is one run and one pass over the newest-first list, never one run per day.
single_run = BackfillPolicy.single_run()

# Run tag that makes the sync walk its whole window instead of stopping where the last
# successful run left the warehouse exact (the weekly heal run and `sync --full-window`).
FULL_WINDOW_TAG = "drift/full_window"

# Run tag naming the one Drift org a run syncs (its orgId); without it a run syncs every
# connected org. The nightly and weekly schedules run each org on its own.
ORG_TAG = "drift/org"


class PartitionRangeError(UsageError):
    """A requested range of days lies (partly) outside the daily partitions."""


def daily_partitions(history_start: date) -> DailyPartitionsDefinition:
    """Daily UTC partitions from `history_start` (DRIFT_HISTORY_START) up to today.

    end_offset=1: today's (still filling) partition exists, so the nightly run can re-sync it.
    """
    return DailyPartitionsDefinition(start_date=history_start.isoformat(), timezone="UTC", end_offset=1)


def check_day_range(history_start: date, start: date, end: date, today: date | None = None) -> None:
    """Raise `PartitionRangeError` unless `[start, end)` is a non-empty range of existing partitions."""
    today = today or datetime.now(timezone.utc).date()
    tomorrow = today + timedelta(days=1)
    if end <= start:
        raise PartitionRangeError(f"--end ({end}) must be after --start ({start})")
    if start < history_start:
        raise PartitionRangeError(
            f"--start ({start}) is before DRIFT_HISTORY_START ({history_start}), the first daily "
            "partition: set DRIFT_HISTORY_START=YYYY-MM-DD to reach further back")
    if end > tomorrow:
        raise PartitionRangeError(
            f"--end ({end}) is after tomorrow ({tomorrow}): the last daily partition is today's")


def range_label(partition_keys: Sequence[str]) -> str:
    """One short label for a run's partition keys: `2024-02-24`, or `first...last (N days)`.

    Run metadata, `raw.exports` and the event log carry this, never the list itself: a
    multi-year backfill has over a thousand keys.
    """
    if not partition_keys:
        return ""
    if len(partition_keys) == 1:
        return partition_keys[0]
    return f"{partition_keys[0]}...{partition_keys[-1]} ({len(partition_keys)} days)"
