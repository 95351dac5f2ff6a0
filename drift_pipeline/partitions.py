"""The daily UTC partitions every Drift asset shares."""

from dagster import BackfillPolicy, DailyPartitionsDefinition

# end_offset=1: today's (still filling) partition exists, so the nightly run can re-sync it.
daily_partitions = DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC", end_offset=1)

# A range of days is one run and one pass over the newest-first list, never one run per day.
single_run = BackfillPolicy.single_run()

# Run tag that makes the sync walk its whole window instead of stopping where the last
# successful run left the warehouse exact (the weekly heal run and `sync --full-window`).
FULL_WINDOW_TAG = "drift/full_window"
