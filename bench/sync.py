"""Sync benchmark: calls per conversation, sustained request rate vs the simulator's limit,
DuckDB load rate, and Arrow MERGE upsert vs row-by-row INSERT on the same 100k messages.

    .venv/bin/python bench/sync.py [--days 2] [--conversations-per-day 150] [--rate-limit 600] [--rows 100000]

Every figure is measured in this run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drift_pipeline.drift.client import DriftClient  # noqa: E402
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402
from drift_pipeline.ingest.sync import ConversationSync  # noqa: E402
from drift_pipeline.settings import Settings  # noqa: E402
from drift_pipeline.timeutil import ms_to_ts  # noqa: E402
from drift_pipeline.warehouse import schema  # noqa: E402
from drift_pipeline.warehouse.connection import open_warehouse  # noqa: E402
from drift_pipeline.warehouse.load import transaction, upsert  # noqa: E402
from drift_pipeline.warehouse.schema import Table  # noqa: E402


def insert_row_by_row(conn, table: Table, rows: list[dict]) -> int:
    """The naive load the Arrow MERGE is measured against: one INSERT per row."""
    columns = table.column_names
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    for row in rows:
        conn.execute(sql, [row.get(c) for c in columns])
    return len(rows)


def bench_sync(days: int, per_day: int, rate_limit: int, home: Path) -> dict:
    end = datetime(2026, 11, 15, tzinfo=timezone.utc)
    simulator = Simulator(SimulatorConfig(seed=7, days=days, conversations_per_day=per_day, end=end,
                                          rate_limit_per_minute=rate_limit))
    with SimulatorServer(simulator) as server:
        settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(home), "DRIFT_API_BASE_URL": server.base_url,
                                      "DRIFT_ACCESS_TOKEN": simulator.config.static_access_token})
        settings.ensure_dirs()

        async def go():
            async with DriftClient.from_settings(settings) as client:
                with open_warehouse(settings) as conn:
                    sync = ConversationSync(client, conn, salt="bench", overlap=timedelta(hours=1))
                    return await sync.run((end - timedelta(days=days)).replace(tzinfo=None), end.replace(tzinfo=None))

        started = time.monotonic()
        stats = asyncio.run(go())
        elapsed = time.monotonic() - started
        requests = simulator.stats.requests_total
        return {
            "conversations": stats.conversations_fetched,
            "api_calls": requests,
            "calls_per_conversation": requests / max(stats.conversations_fetched, 1),
            "elapsed_s": elapsed,
            "requests_per_minute": requests / elapsed * 60,
            "limit_per_minute": rate_limit,
            "responses_429": simulator.stats.responses_429,
            "messages": stats.rows["messages"],
        }


def _messages(n: int) -> list[dict]:
    base = 1_763_000_000_000
    return [
        {"org_id": 1, "conversation_id": 3_100_000_000 + i // 25, "message_id": 9_000_000 + i,
         "created_at": ms_to_ts(base + i * 1000), "message_type": "chat",
         "author_type": "contact" if i % 2 else "user", "author_id": 42 + i % 7, "is_bot": i % 5 == 0,
         "body": f"<p>message {i}</p>", "edited_message_id": None, "edit_type": None,
         "synced_at": ms_to_ts(base)}
        for i in range(n)
    ]


def bench_load(rows: int, home: Path) -> dict:
    data = _messages(rows)
    results = {}
    for name, load in (("arrow_upsert", upsert), ("row_by_row", insert_row_by_row)):
        conn = duckdb.connect(str(home / f"load-{name}.duckdb"))
        schema.create_raw_schema(conn)
        started = time.monotonic()
        with transaction(conn):
            load(conn, schema.MESSAGES, data)
        results[name] = time.monotonic() - started
        assert conn.execute("SELECT count(*) FROM raw.messages").fetchall()[0][0] == rows
        conn.close()
    conn = duckdb.connect(str(home / "load-arrow_upsert.duckdb"))
    started = time.monotonic()
    with transaction(conn):
        upsert(conn, schema.MESSAGES, data)  # the same rows again: an overlap re-sync
    results["arrow_reupsert"] = time.monotonic() - started
    conn.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--conversations-per-day", type=int, default=150)
    parser.add_argument("--rate-limit", type=int, default=600)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        s = bench_sync(args.days, args.conversations_per_day, args.rate_limit, home / "sync")
        print(f"sync: {s['conversations']} conversations, {s['messages']} messages, {s['api_calls']} API calls "
              f"in {s['elapsed_s']:.1f} s")
        print(f"  calls per conversation: {s['calls_per_conversation']:.2f}")
        print(f"  sustained: {s['requests_per_minute']:.0f} requests/min = "
              f"{100 * s['requests_per_minute'] / s['limit_per_minute']:.1f}% of the {s['limit_per_minute']}/min limit; "
              f"429s: {s['responses_429']} ({100 * s['responses_429'] / max(s['api_calls'], 1):.2f}%)")
        load = bench_load(args.rows, home)
        print(f"load of {args.rows} messages into DuckDB:")
        print(f"  Arrow MERGE upsert: {load['arrow_upsert']:.2f} s ({args.rows / load['arrow_upsert']:,.0f} rows/s); "
              f"re-upsert of the same rows: {load['arrow_reupsert']:.2f} s")
        print(f"  row-by-row INSERT:  {load['row_by_row']:.2f} s ({args.rows / load['row_by_row']:,.0f} rows/s)")
        print(f"  ratio row-by-row / Arrow: {load['row_by_row'] / load['arrow_upsert']:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
