"""The warehouse on PostgreSQL: the same raw schema, loads and sync as on DuckDB.

Each test runs against a throwaway server on 127.0.0.1 (the `postgres_server` fixture) and is
skipped with a one-line reason where Debian's postgresql is not installed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from drift_pipeline.assets.drift_reports import reconcile_with_drift
from drift_pipeline.dbt_project import dbt_profile_vars, dbt_vars
from drift_pipeline.instance import dagster_environment
from drift_pipeline.drift.client import DriftClient
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.assets.drift_streams import run_streams
from drift_pipeline.resources import DriftApiResource, PostgresWarehouseResource, warehouse_resource
from drift_pipeline.runner import refresh_marts
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse import schema
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.load import transaction, upsert
from drift_pipeline.warehouse.postgres import connect_postgres

from conftest import SIM_END, mart_rows, query, sync
from test_dbt_models import FIRST_SYNC, assert_all_passed, base_dataset, dbt, load_raw, raw_rows

pytestmark = pytest.mark.postgres


def test_raw_upserts_on_postgres_keep_one_row_per_key_the_last_one_winning(postgres_server):
    url = postgres_server.create_database("drift_upserts")
    t0 = datetime(2026, 11, 1, 12, 0, 0, 123456)
    conn = connect_postgres(url)
    try:
        row = {"org_id": 1, "conversation_id": 7, "status": "open", "created_at": t0,
               "participant_user_ids": [3, 4], "tags": ["vip", "emea"], "synced_at": t0}
        with transaction(conn):
            assert upsert(conn, schema.CONVERSATIONS, [row, dict(row, status="pending")]) == 2
        upsert(conn, schema.CONVERSATIONS, [dict(row, status="closed", tags=[]),
                                            dict(row, conversation_id=8, tags=None)])
        stored = conn.execute("SELECT conversation_id, status, created_at, participant_user_ids, tags "
                              "FROM raw.conversations ORDER BY 1").fetchall()
        assert stored == [(7, "closed", t0, [3, 4], []), (8, "open", t0, [3, 4], None)]
        # A failed transaction leaves nothing behind, and the next load still works.
        with pytest.raises(RuntimeError):
            with transaction(conn):
                upsert(conn, schema.CONVERSATIONS, [dict(row, conversation_id=9)])
                raise RuntimeError("boom")
        upsert(conn, schema.CONVERSATIONS, [dict(row, conversation_id=10)])
        assert [r[0] for r in conn.execute("SELECT conversation_id FROM raw.conversations ORDER BY 1")
                .fetchall()] == [7, 8, 10]
    finally:
        conn.close()
    # Opening again migrates nothing and keeps the rows.
    with connect_postgres(url) as again:
        assert again.execute("SELECT count(*) FROM raw.conversations WHERE org_id = ?", [1]).fetchall() == [(3,)]


def test_a_sync_into_postgres_stores_what_a_sync_into_duckdb_stores(sim_env, postgres_server):
    simulator, settings = sim_env
    end = SIM_END.replace(tzinfo=None)
    start = end - timedelta(days=2)
    duck = sync(settings, start, end)
    pg_settings = replace(settings, warehouse_url=postgres_server.create_database("drift_sync"))

    async def go():
        async with DriftClient.from_settings(pg_settings) as client:
            with open_warehouse(pg_settings) as conn:
                return await ConversationSync(client, conn, salt=settings.secret("pii_salt")).run(start, end)

    pg = asyncio.run(go())
    assert pg.rows == duck.rows and pg.api_calls == duck.api_calls
    with open_warehouse(pg_settings) as conn:
        for table in schema.RAW_TABLES:
            columns = [c for c in table.column_names if c not in ("synced_at", "recorded_at", "job_id",
                                                                   "started_at", "finished_at")]
            sql = f"SELECT {', '.join(columns)} FROM {table.name} ORDER BY {', '.join(table.key)}"
            assert conn.execute(sql).fetchall() == [tuple(r) for r in query(settings, sql)], table.name


# -- the whole path: two orgs in two parallel runs, Dagster on Postgres, marts as on DuckDB ------
DRIFT_PIPELINE = str(Path(sys.executable).parent / "drift-pipeline")
ORGS = ({"seed": 21, "org_id": 21000001}, {"seed": 22, "org_id": 22000002})


def _same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _wait_for(condition, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_orgs_synced_in_parallel_runs_on_postgres_build_the_marts_duckdb_builds(
        home, make_simulator, postgres_server, monkeypatch):
    end = SIM_END.replace(tzinfo=None)
    start = end - timedelta(days=2)
    simulators = [make_simulator(days=2, conversations_per_day=15, rate_limit_per_minute=60_000, **org)
                  for org in ORGS]
    base = Settings.from_env()
    pg_settings = replace(base, home=home / "pg",
                          warehouse_url=postgres_server.create_database("drift_warehouse"),
                          dagster_pg_url=postgres_server.create_database("drift_dagster"))
    duck_settings = replace(base, home=home / "duckdb")
    # Postgres: each org is its own `drift-pipeline sync` process and Dagster run, started
    # together. The test holds raw.exports locked until both runs are inside their sync: so
    # both were in flight at once (on DuckDB the second would fail on the file lock).
    with connect_postgres(pg_settings.warehouse_url) as warehouse:
        warehouse.execute("BEGIN")
        warehouse.execute("LOCK TABLE raw.exports IN EXCLUSIVE MODE")
        processes = []
        for simulator, server in simulators:
            env = {**os.environ, "DRIFT_PIPELINE_HOME": str(pg_settings.home),
                   "DRIFT_WAREHOUSE_URL": pg_settings.warehouse_url,
                   "DRIFT_DAGSTER_PG_URL": pg_settings.dagster_pg_url,
                   "DRIFT_API_BASE_URL": server.base_url,
                   "DRIFT_ACCESS_TOKEN": simulator.config.static_access_token}
            processes.append(subprocess.Popen(
                [DRIFT_PIPELINE, "sync", "--start", str(start.date()), "--end", str(end.date()), "--no-dbt"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        # Watched from a session of its own: inside the locking transaction, pg_stat_activity
        # would answer from the snapshot its first read took.
        try:
            with connect_postgres(pg_settings.warehouse_url) as watcher:
                _wait_for(lambda: watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO raw.exports%'").fetchall()[0][0] == 2
                    or any(p.poll() is not None for p in processes), "both runs to reach the warehouse")
        finally:
            warehouse.execute("ROLLBACK")
        outputs = [p.communicate(timeout=600) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    with psycopg.connect(pg_settings.dagster_pg_url) as dagster_db:
        runs = dagster_db.execute("SELECT status FROM runs").fetchall()
    assert runs == [("SUCCESS",), ("SUCCESS",)], "both runs are in Dagster's Postgres storage"
    assert (pg_settings.home / "dagster" / "dagster.yaml").read_text().count("postgres_url") == 1
    # Secrets (the URLs) reach Dagster's resources only from the environment, as in a deployment.
    monkeypatch.setenv("DRIFT_WAREHOUSE_URL", pg_settings.warehouse_url)
    monkeypatch.setenv("DRIFT_DAGSTER_PG_URL", pg_settings.dagster_pg_url)
    for name, value in dagster_environment(pg_settings).items():  # what the CLI's entry point sets
        monkeypatch.setenv(name, value)
    refresh_marts(pg_settings)  # dbt on dbt-postgres, then the DuckDB serving copy from Postgres
    # The reconciliation check on the Postgres marts: each org's latest sync asked of its
    # simulator's reports (compared with the DuckDB marts' below).
    checks = {"pg": {}, "duckdb": {}}
    for (simulator, server), org in zip(simulators, ORGS):
        org_pg = replace(pg_settings, api_base_url=server.base_url,
                         access_token=simulator.config.static_access_token)
        checks["pg"][org["org_id"]] = reconcile_with_drift(
            org_pg, PostgresWarehouseResource(url=pg_settings.warehouse_url), {org["org_id"]})
    for name in ("DRIFT_WAREHOUSE_URL", "DRIFT_DAGSTER_PG_URL", *dagster_environment(pg_settings)):
        monkeypatch.delenv(name, raising=False)

    # DuckDB: the same two orgs, one after the other into one file, the same models.
    for (simulator, server), org in zip(simulators, ORGS):
        org_settings = replace(duck_settings, api_base_url=server.base_url,
                               access_token=simulator.config.static_access_token)
        sync(org_settings, start, end, org_id=org["org_id"])
        # The meetings, playbooks and accounts a `drift-pipeline sync` reads too (drift_streams).
        monkeypatch.setenv("DRIFT_ACCESS_TOKEN", org_settings.access_token)
        run_streams(DriftApiResource.for_settings(org_settings), warehouse_resource(org_settings), [org["org_id"]])
    monkeypatch.delenv("DRIFT_ACCESS_TOKEN", raising=False)
    refresh_marts(duck_settings)
    for (simulator, server), org in zip(simulators, ORGS):
        org_duck = replace(duck_settings, api_base_url=server.base_url,
                           access_token=simulator.config.static_access_token)
        checks["duckdb"][org["org_id"]] = reconcile_with_drift(org_duck, warehouse_resource(org_duck),
                                                               {org["org_id"]})
    for org in ORGS:
        pg, duck = checks["pg"][org["org_id"]], checks["duckdb"][org["org_id"]]
        assert pg.report_calls >= 1 and pg.tallies["first_close"].compared > 0
        assert pg.passed and pg.unexplained == [], pg.unexplained[:5]
        assert pg.tallies == duck.tallies and pg.reason_counts() == duck.reason_counts()

    pg_marts = mart_rows(pg_settings.serving_dir / "analytics.duckdb", skip=("synced_at",))
    duck_marts = mart_rows(duck_settings.serving_dir / "analytics.duckdb", skip=("synced_at",))
    assert set(pg_marts) == set(duck_marts) >= {"fct_conversations", "agg_daily_metrics", "agg_agent_daily"}
    for table, (columns, rows) in duck_marts.items():
        pg_columns, pg_rows = pg_marts[table]
        assert pg_columns == columns, table
        assert len(pg_rows) == len(rows), table
        mismatches = [(table, column, a, b) for pg_row, row in zip(pg_rows, rows)
                      for column, a, b in zip(columns, pg_row, row) if not _same_value(a, b)]
        assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:5]}"
    # Both orgs are there, each with its own conversations.
    fct_columns, fct_rows = pg_marts["fct_conversations"]
    org_index = fct_columns.index("org_id")
    assert {row[org_index] for row in fct_rows} == {org["org_id"] for org in ORGS}


# -- the meetings and playbooks marts on Postgres, incremental path included ---------------------
def _pg_marts(url: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """conftest.mart_rows for a Postgres warehouse: each mart's columns (no `_` bookkeeping) and rows in order."""
    out = {}
    with psycopg.connect(url) as conn:
        for (table,) in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
                                     "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall():
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = %s ORDER BY ordinal_position", [table]).fetchall() if not c.startswith("_")]
            # Both sort nulls last and compare strings bytewise here (the test server's locale is C).
            out[table] = (columns, conn.execute(f"SELECT {', '.join(columns)} FROM marts.{table} "
                                                f"ORDER BY {', '.join(columns)}").fetchall())
    return out


def _assert_same_marts(pg: dict, duck: dict) -> None:
    assert set(pg) == set(duck) >= {"fct_meetings", "agg_playbook_daily"}
    for table, (columns, rows) in duck.items():
        pg_columns, pg_rows = pg[table]
        assert pg_columns == columns and len(pg_rows) == len(rows), table
        mismatches = [(table, column, a, b) for pg_row, row in zip(pg_rows, rows)
                      for column, a, b in zip(columns, pg_row, row) if not _same_value(a, b)]
        assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:5]}"


def test_meetings_and_playbook_marts_build_on_postgres_as_on_duckdb_incremental_included(postgres_server, tmp_path):
    """tests/test_dbt_models.py's hand-made warehouse (meetings cancelled and rebooked, a
    playbook never listed), then its second sync (a cancellation, a rebooking, a rename), built
    on both databases: the same marts after the full build and after the incremental one, and on
    Postgres the incremental build equals a full refresh."""
    import duckdb

    import test_dbt_models as hand

    url = postgres_server.create_database("drift_meetings")
    duck_home, pg_home = tmp_path / "duckdb", tmp_path / "pg"
    duck_home.mkdir()
    pg_home.mkdir()
    pg_vars = dbt_vars(Settings.from_env({"DRIFT_PIPELINE_HOME": str(pg_home), "DRIFT_WAREHOUSE_URL": url}))
    duck_vars = dbt_vars(Settings.from_env({"DRIFT_PIPELINE_HOME": str(duck_home)}))

    def build(*args: str, sla_as_of: str) -> None:
        """dbt on both warehouses, with SLA policies measured at `sla_as_of` (fct_sla_events
        measures waiting turns again when it moves)."""
        for home, profile_vars in ((duck_home, duck_vars), (pg_home, pg_vars)):
            run_vars = {**json.loads(profile_vars[1]), **json.loads(SLA_VARS), "sla_as_of": sla_as_of}
            completed = subprocess.run(
                [str(Path(sys.executable).with_name("dbt")), *args, "--vars", json.dumps(run_vars),
                 "--project-dir", str(hand.DBT_PROJECT),
                 "--profiles-dir", str(hand.DBT_PROJECT), "--target-path", str(home / "target"),
                 "--log-path", str(home / "logs")],
                env={**os.environ, "DRIFT_PIPELINE_HOME": str(home), "DO_NOT_TRACK": "1"},
                capture_output=True, text=True, timeout=300)
            assert completed.returncode == 0, completed.stdout[-3000:]

    def copy_raw_to_postgres() -> None:
        with duckdb.connect(str(duck_home / "warehouse.duckdb"), read_only=True) as duck, connect_postgres(url) as pg:
            for table in schema.RAW_TABLES:
                upsert(pg, table, duck.sql(f"SELECT {', '.join(table.column_names)} FROM {table.name}").to_arrow_table())

    with duckdb.connect(str(duck_home / "warehouse.duckdb")) as conn:
        schema.create_raw_schema(conn)
        hand.load_raw(conn, hand.base_dataset(), hand.FIRST_SYNC)
        hand.load_widget_events(conn, hand.WIDGET_EVENTS, hand.FIRST_SYNC)
        hand.load_meetings(conn, hand.MEETINGS, hand.MEETING_CHANGES, hand.FIRST_SYNC)
        hand.load_playbooks(conn, hand.PLAYBOOKS, hand.FIRST_SYNC)
    copy_raw_to_postgres()
    build("run", "--select", "+marts", sla_as_of="2026-10-30 21:01:00")
    _assert_same_marts(_pg_marts(url), mart_rows(duck_home / "warehouse.duckdb"))

    with duckdb.connect(str(duck_home / "warehouse.duckdb")) as conn:
        rebooked = hand.meeting(hand.ORG, "m-103b", "ACTIVE", 103, "2026-11-03 11:00:00", "2026-11-10 11:00:00",
                                "2026-11-03 11:00:00")
        cancelled = hand.meeting_change(hand.ORG, "m-101b", "2026-11-03 10:00:00", "CANCELED", "2026-11-06 15:00:00")
        hand.load_meetings(conn, [*hand.MEETINGS, rebooked], [*hand.MEETING_CHANGES, cancelled], hand.SECOND_SYNC)
        hand.load_playbooks(conn, [(hand.ORG, 501, "Pricing page v2"), (hand.ORG, 599, "Webinar")], hand.SECOND_SYNC)
    copy_raw_to_postgres()
    build("run", "--select", "+marts", sla_as_of="2026-11-04 12:00:00")
    incremental = _pg_marts(url)
    _assert_same_marts(incremental, mart_rows(duck_home / "warehouse.duckdb"))
    fct_columns, fct_rows = incremental["fct_conversations"]
    names = {row[fct_columns.index("playbook_name")] for row in fct_rows
             if row[fct_columns.index("playbook_id")] == 501 and row[fct_columns.index("org_id")] == hand.ORG}
    assert names == {"Pricing page v2"}

    # 107's first reply is still awaited at the later "now": measured again, 4 days 15 h
    sla_columns, sla_rows = incremental["fct_sla_events"]
    waits = {(row[sla_columns.index("conversation_id")], row[sla_columns.index("sla_policy")]):
             row[sla_columns.index("elapsed_seconds")] for row in sla_rows
             if row[sla_columns.index("org_id")] == hand.ORG and row[sla_columns.index("sla_ended_at")] is None}
    assert waits[(107, "Standard")] == 399600.0
    build("run", "--select", "+marts", "--full-refresh", sla_as_of="2026-11-04 12:00:00")
    _assert_same_marts(_pg_marts(url), incremental)


# -- the dbt project itself on Postgres: unit tests, data tests and the marts DuckDB builds -------
SLA_VARS = json.dumps({"sla_as_of": "2026-10-30 21:01:00", "sla_policies": [
    {"name": "Standard", "first_reply_seconds": 120, "next_reply_seconds": 60},
    {"name": "Business", "inbox_ids": [3], "first_reply_seconds": 3600, "next_reply_seconds": 1800,
     "in_business_hours": True}]})


def _postgres_marts(url: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """mart_rows' shape, read from the Postgres warehouse."""
    out = {}
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'marts' AND table_type = 'BASE TABLE' ORDER BY 1")]
        for table in tables:
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = %s ORDER BY ordinal_position", [table]) if not c.startswith("_")]
            out[table] = (columns, conn.execute(
                f"SELECT {', '.join(columns)} FROM marts.{table} ORDER BY {', '.join(str(i + 1) for i in range(len(columns)))}"
            ).fetchall())
    return out


def test_the_dbt_project_on_postgres_passes_its_unit_tests_and_builds_the_duckdb_marts(
        home, postgres_server, monkeypatch, tmp_path):
    """`dbt build` on dbt-postgres runs every unit test (the hand-computed expectations) and data
    test there, and the marts equal DuckDB's on the same raw rows, SLA policies in business hours
    included."""
    dataset = base_dataset()
    duck_home = tmp_path / "duckdb"
    duck_home.mkdir()
    with duckdb.connect(str(duck_home / "warehouse.duckdb")) as conn:
        schema.create_raw_schema(conn)
        load_raw(conn, dataset, FIRST_SYNC)
    assert_all_passed(dbt(duck_home, tmp_path / "duck-target", "build", "--vars", SLA_VARS))

    pg_settings = replace(Settings.from_env(), home=home / "pg",
                          warehouse_url=postgres_server.create_database("drift_dbt"))
    with connect_postgres(pg_settings.warehouse_url) as conn:
        tables = {"conversations": schema.CONVERSATIONS, "messages": schema.MESSAGES,
                  "status_events": schema.STATUS_EVENTS, "users": schema.USERS}
        for name, rows in raw_rows(dataset, FIRST_SYNC).items():
            upsert(conn, tables[name], rows)
    pg_vars = json.dumps({**dbt_profile_vars(pg_settings), **json.loads(SLA_VARS)})
    pg_run = dbt(pg_settings.home, tmp_path / "pg-target", "build", "--vars", pg_vars)
    assert_all_passed(pg_run)
    assert any(r["unique_id"].startswith("unit_test.drift_pipeline.fct_sla_events") for r in pg_run.results)

    duck_marts = mart_rows(duck_home / "warehouse.duckdb")
    pg_marts = _postgres_marts(pg_settings.warehouse_url)
    assert set(pg_marts) == set(duck_marts) >= {"fct_sla_events", "agg_daily_backlog"}
    for table, (columns, rows) in duck_marts.items():
        pg_columns, pg_rows = pg_marts[table]
        assert pg_columns == columns, table
        # (this dataset books no meeting: fct_meetings is empty on both; the meetings test above has them)
        assert len(pg_rows) == len(rows) and (rows or table == "fct_meetings"), table
        mismatches = [(table, column, a, b) for pg_row, row in zip(pg_rows, rows)
                      for column, a, b in zip(columns, pg_row, row) if not _same_value(a, b)]
        assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:5]}"
