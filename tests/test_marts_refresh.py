"""The marts refresh between builds (webhooks, replay, erasure): dbt in this process with the
parsed manifest, staging views created once per change of their definitions, and its timings."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import pytest

from drift_pipeline.marts import refresh_marts
from drift_pipeline.webhooks.apply import TIMINGS_LOG

from conftest import SIM_END, query, sync

pytestmark = pytest.mark.slow
END = SIM_END.replace(tzinfo=None)


def test_the_refresh_creates_views_once_then_leaves_them_and_recreates_a_missing_one(sim_env):
    simulator, settings = sim_env
    sync(settings, END - timedelta(days=3), END)
    first = refresh_marts(settings)
    assert first["views_skipped"] is False
    served = query(settings, "SELECT count(*) FROM marts.fct_conversations")
    assert served[0][0] > 0

    second = refresh_marts(settings)
    assert second["views_skipped"] is True
    assert query(settings, "SELECT count(*) FROM marts.fct_conversations") == served

    # A view dropped behind the refresh's back (a warehouse rebuilt by hand): the refresh runs
    # again with the views and puts it back.
    conn = duckdb.connect(str(settings.warehouse_path))
    view = conn.execute("SELECT schema_name || '.' || view_name FROM duckdb_views() "
                        "WHERE NOT internal AND view_name = 'stg_drift__messages'").fetchall()[0][0]
    conn.execute(f"DROP VIEW {view}")
    conn.close()
    refresh_marts(settings)
    assert query(settings, "SELECT count(*) FROM duckdb_views() WHERE view_name = 'stg_drift__messages'") == [(1,)]

    # The warehouse is free again for the next writer, and every refresh left its timings.
    duckdb.connect(str(settings.warehouse_path)).close()
    kinds = [json.loads(line)["kind"] for line in (settings.home / TIMINGS_LOG).read_text().splitlines()]
    assert kinds.count("marts") == 3
