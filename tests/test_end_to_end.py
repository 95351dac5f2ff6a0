"""The whole path through Dagster: one run materializes raw and marts for a partition range, and
every column of the marts equals an independent Python reading of the metric definitions (DECISIONLOG.md) over the
simulator's own data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from drift_pipeline.instance import dagster_environment, ensure_dagster_home
from drift_pipeline.timeutil import ms_to_ts

from conftest import SIM_END, query
from reference_metrics import (
    AGENT_DAILY_COLUMNS,
    DAILY_COLUMNS,
    FCT_COLUMNS,
    REPLY_COLUMNS,
    reference_agent_daily,
    reference_daily_metrics,
    reference_fct_conversations,
    reference_reply_breadth,
)

pytestmark = pytest.mark.slow
END = SIM_END.replace(tzinfo=None)
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _same(actual, expected, column):
    if isinstance(expected, float) or isinstance(actual, float):
        if expected is None or actual is None:
            return expected is None and actual is None
        return math.isclose(actual, expected, abs_tol=1e-3)  # within 1 ms
    if isinstance(actual, list):
        actual = tuple(actual)
    return actual == expected


def _compare(rows: dict, expected: dict, columns, what: str):
    assert set(rows) == set(expected), f"{what}: keys differ"
    mismatches = [
        (key, column, rows[key][column], expected[key][column])
        for key in expected for column in columns
        if not _same(rows[key][column], expected[key][column], column)
    ]
    assert not mismatches, f"{what}: {len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_dagster_partition_range_builds_raw_and_marts_equal_to_the_reference(sim_env):
    simulator, settings = sim_env
    ensure_dagster_home(settings)
    checkout_target = Path(__file__).resolve().parents[1] / "dbt_project" / "target"
    before = {p.name for p in checkout_target.iterdir()} if checkout_target.exists() else set()
    first_day, last_day = (END - timedelta(days=3)).date(), (END - timedelta(days=1)).date()
    proc = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "drift_pipeline.definitions", "--select", "*",
         "--partition-range", f"{first_day}...{last_day}"],
        env={**os.environ, **dagster_environment(settings)}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One run did it all: raw assets and dbt models.
    assert "RUN_SUCCESS" in proc.stderr
    # dbt's run artifacts and logs live under the home, never in the checkout.
    after = {p.name for p in checkout_target.iterdir()} if checkout_target.exists() else set()
    assert after <= before, f"dbt wrote into the checkout: {sorted(after - before)}"
    runs = [p for p in (settings.home / "dbt").iterdir() if (p / "run_results.json").exists()]
    builds = [p for p in runs if "-docs-" not in p.name]  # `dbt docs generate` has its own folder
    assert len(builds) == 1 and (builds[0] / "dbt.log").exists()
    assert proc.stderr.count("RUN_START") == 1
    # The marts agree with the simulator's Drift reports, or differ only for recorded reasons
    # (the check's figures: tests/test_runner.py; its reasons: tests/test_reconcile.py).
    assert "Asset check 'matches_drift_reports' on 'marts/fct_conversations' passed." in proc.stderr

    world = simulator.world
    list_from = END - timedelta(days=3, minutes=settings.overlap_minutes)
    conversations = [c for c in world.conversations.values()
                     if list_from <= ms_to_ts(c["updatedAt"]) < END]
    assert len(conversations) > 100
    # What the pipeline can know: the status it polled at updatedAt, and Drift's own first close
    # from the reports endpoint (conversations reopened before the first sync included).
    status_events = [(c["id"], c["status"], ms_to_ts(c["updatedAt"])) for c in conversations]
    first_closes = {c["id"]: world.conversation_metrics(c["id"])["firstCloseAt"] for c in conversations}
    status_events += [(cid, "closed", ms_to_ts(at)) for cid, at in first_closes.items() if at is not None]
    reopened_before_sync = [c["id"] for c in conversations
                            if first_closes[c["id"]] is not None and first_closes[c["id"]] < c["updatedAt"]]
    assert len(reopened_before_sync) >= 2, "the history holds conversations reopened before the sync"
    expected = reference_fct_conversations(conversations, {c["id"]: world.messages[c["id"]] for c in conversations},
                                           status_events)

    def rows(sql, key_columns):
        conn_rows = query(settings, sql)
        names = [c.strip() for c in sql.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
        out = {}
        for r in conn_rows:
            record = dict(zip(names, r))
            key = tuple(record[k] for k in key_columns)
            out[key[0] if len(key) == 1 else key] = record
        return out

    fct = rows(f"SELECT {', '.join(FCT_COLUMNS)} FROM marts.fct_conversations", ["conversation_id"])
    _compare(fct, expected, FCT_COLUMNS, "fct_conversations")

    # Reply breadth: an independent walk over the same messages (tests/reference_metrics.py).
    messages = {c["id"]: world.messages[c["id"]] for c in conversations}
    replies = rows(f"SELECT conversation_id, {', '.join(REPLY_COLUMNS)} FROM marts.fct_conversations",
                   ["conversation_id"])
    _compare(replies, reference_reply_breadth(messages, expected), REPLY_COLUMNS, "fct_conversations replies")
    assert any(r["agent_switch_count"] > 0 for r in replies.values())
    assert {r["touch_class"] for r in replies.values()} >= {"one", "two", "multi"}

    daily = rows(f"SELECT {', '.join(DAILY_COLUMNS)} FROM marts.agg_daily_metrics", ["metric_date"])
    _compare(daily, reference_daily_metrics(expected), DAILY_COLUMNS, "agg_daily_metrics")

    agents = rows(f"SELECT {', '.join(AGENT_DAILY_COLUMNS)} FROM marts.agg_agent_daily", ["metric_date", "user_id"])
    _compare(agents, reference_agent_daily(expected, world.users), AGENT_DAILY_COLUMNS, "agg_agent_daily")

    # The edge cases the simulator generates were part of what matched.
    assert any(r["has_bot"] and r["handed_off"] for r in fct.values())
    assert any(r["first_response_seconds"] is None for r in fct.values())
    assert any(r["message_count"] > 50 for r in fct.values())
    for cid in reopened_before_sync:  # the true first close, not the last updatedAt
        assert fct[cid]["first_closed_at"] == ms_to_ts(first_closes[cid])

    # Published after the run, for analysts.
    assert (settings.serving_dir / "analytics.duckdb").exists()
    assert (settings.serving_dir / "parquet" / "marts.fct_conversations.parquet").exists()
    # dbt docs for them too: every model and source in the catalog, the models' compiled SQL.
    docs = settings.serving_dir / "dbt-docs"
    catalog, manifest = (json.loads((docs / name).read_text()) for name in ("catalog.json", "manifest.json"))
    models = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    assert len(models) >= 15 and models <= set(catalog["nodes"])
    assert set(manifest["sources"]) <= set(catalog["sources"])
    assert "SELECT" in manifest["nodes"]["model.drift_pipeline.fct_conversations"]["compiled_code"].upper()
    exports = query(settings, "SELECT success, partition_keys FROM raw.exports")
    assert exports == [(True, f"{first_day}...{last_day} (3 days)")]
