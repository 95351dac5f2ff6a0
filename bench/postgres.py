"""The same simulated data into DuckDB and into PostgreSQL: sync and marts times, and two orgs
synced one after the other vs side by side (only Postgres can: DuckDB has one writer).

    .venv/bin/python bench/postgres.py --url postgresql://drift@127.0.0.1:5432/postgres

`--url` names a server and a database this may create databases from (it makes
`drift_bench_<n>` and drops them again). Measures in-process syncs and `dbt run +marts` with
publish, no Dagster: what changes between the engines, not the fixed cost of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from drift_pipeline.drift.client import DriftClient
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.runner import refresh_marts
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import open_warehouse

END = datetime(2026, 11, 15, tzinfo=timezone.utc)


def _database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def _sync(settings: Settings, server, simulator, days: int) -> float:
    settings = replace(settings, api_base_url=server.base_url, access_token=simulator.config.static_access_token)
    end = END.replace(tzinfo=None)

    async def go():
        async with DriftClient.from_settings(settings) as client:
            with open_warehouse(settings) as conn:
                await ConversationSync(client, conn, salt="bench", org_id=simulator.config.org_id).run(
                    end - timedelta(days=days), end)

    started = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - started


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="postgresql://user@host:port/database to create databases from")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("DRIFT_PII_SALT", "bench")
    work = Path(tempfile.mkdtemp(prefix="drift-bench-pg-"))
    sims = []
    for seed, org_id in ((31, 31000001), (32, 32000002)):
        simulator = Simulator(SimulatorConfig(seed=seed, org_id=org_id, days=args.days, end=END,
                                              conversations_per_day=args.per_day, rate_limit_per_minute=0))
        sims.append((simulator, SimulatorServer(simulator).start()))
    base = Settings.from_env({"DRIFT_PIPELINE_HOME": str(work / "duckdb"), "DRIFT_PII_SALT": "bench"})
    results = {}
    try:
        engines = {"duckdb": base,
                   "postgres": replace(base, home=work / "pg", warehouse_url=_database(args.url, "drift_bench_1"))}
        for engine, settings in engines.items():
            settings.ensure_dirs()
            one = _sync(settings, sims[0][1], sims[0][0], args.days)
            two = _sync(settings, sims[1][1], sims[1][0], args.days)
            first_build = _timed(lambda: refresh_marts(settings))
            again = _sync(settings, sims[0][1], sims[0][0], args.days)  # nothing changed: list only
            incremental = _timed(lambda: refresh_marts(settings))
            results[engine] = {"sync org 1": one, "sync org 2": two, "marts full": first_build,
                               "re-sync (unchanged)": again, "marts incremental": incremental}
        # Two orgs side by side into a fresh Postgres database: one thread each.
        parallel = replace(engines["postgres"], home=work / "pg2", warehouse_url=_database(args.url, "drift_bench_2"))
        parallel.ensure_dirs()
        times = {}
        threads = [threading.Thread(target=lambda i=i: times.__setitem__(i, _sync(parallel, sims[i][1], sims[i][0],
                                                                                    args.days)))
                   for i in (0, 1)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results["postgres"]["two orgs side by side (wall)"] = time.perf_counter() - started
    finally:
        for _, server in sims:
            server.stop()
    conversations = sum(len(s.world.conversations) for s, _ in sims)
    messages = sum(len(m) for s, _ in sims for m in s.world.messages.values())
    print(f"two orgs, {args.days} days x {args.per_day} conversations each: {conversations} conversations, "
          f"{messages} messages (API unpaced)")
    print(f"{'step':32} {'duckdb':>9} {'postgres':>9}")
    for step in results["postgres"]:
        duck = results["duckdb"].get(step)
        print(f"{step:32} {'' if duck is None else f'{duck:8.1f}s':>9} {results['postgres'][step]:8.1f}s")


if __name__ == "__main__":
    main()
