"""The warehouse on PostgreSQL: the same raw schema, loads and sync as on DuckDB.

Each test runs against a throwaway server on 127.0.0.1 (the `postgres_server` fixture) and is
skipped with a one-line reason where Debian's postgresql is not installed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from drift_pipeline.drift.client import DriftClient
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.warehouse import schema
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.load import transaction, upsert
from drift_pipeline.warehouse.postgres import connect_postgres

from conftest import SIM_END, query, sync

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
