"""Meetings, playbooks and accounts: API calls per daily run against the minimum the endpoints
allow, at the demo's size (14 days x 300 conversations a day) or any other.

    .venv/bin/python bench/streams.py [--days 14] [--conversations-per-day 300] [--runs 7]

Each run reads the three streams as the `drift_streams` asset does (one client: playbooks,
accounts, then meetings), then the simulated clock moves a day. The minimum per run: one
playbooks call; one accounts call per 100 accounts (the page size Drift's listing allows);
one meetings call per 1,000 meetings Drift serves (its cap per call), the window being all of
them. Calls are counted by the simulator. Every figure is measured in this run; nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drift_pipeline.drift.client import ACCOUNTS_PAGE_SIZE, MEETINGS_LIMIT, DriftClient  # noqa: E402
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402
from drift_pipeline.ingest.streams import sync_accounts, sync_meetings, sync_playbooks  # noqa: E402
from drift_pipeline.settings import Settings  # noqa: E402
from drift_pipeline.warehouse.connection import open_warehouse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--conversations-per-day", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    config = SimulatorConfig(seed=7, days=args.days, conversations_per_day=args.conversations_per_day,
                             end=datetime.now(timezone.utc), rate_limit_per_minute=30_000)
    simulator = Simulator(config)
    world = simulator.world
    server = SimulatorServer(simulator).start()
    home = tempfile.mkdtemp(prefix="bench-streams-")
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": home, "DRIFT_API_BASE_URL": server.base_url,
                                  "DRIFT_ACCESS_TOKEN": config.static_access_token, "DRIFT_PII_SALT": "bench"})
    settings.ensure_dirs()
    print(f"simulated workspace: {args.days} days x {args.conversations_per_day} conversations/day, "
          f"{len(world.meetings)} meetings booked so far, {len(world.accounts)} accounts, "
          f"{sum(world.playbook_enabled.values())} enabled playbooks")
    print("run | meetings served | meetings calls (min) | playbooks calls (min) | accounts calls (min) | all (min)")
    totals = [0, 0]
    try:
        for run in range(args.runs):
            if run:
                world.advance(24 * 60)
            served = len(world.served_meetings(0, 10**14, 10**9))
            simulator.stats.reset()

            async def go():
                async with DriftClient.from_settings(settings) as client:
                    with open_warehouse(settings) as conn:
                        await sync_playbooks(client, conn, org_id=world.org_id)
                        await sync_accounts(client, conn, org_id=world.org_id)
                        await sync_meetings(client, conn, org_id=world.org_id, salt="bench")

            asyncio.run(go())
            calls = simulator.stats.by_route
            minimum = {"meetings": max(1, math.ceil(served / MEETINGS_LIMIT)), "playbooks": 1,
                       "accounts": max(1, math.ceil(len(world.accounts) / ACCOUNTS_PAGE_SIZE))}
            made = sum(calls[name] for name in minimum)
            totals[0] += made
            totals[1] += sum(minimum.values())
            print(f"{run + 1:3d} | {served:15d} | {calls['meetings']:14d} ({minimum['meetings']}) | "
                  f"{calls['playbooks']:15d} ({minimum['playbooks']}) | {calls['accounts']:14d} "
                  f"({minimum['accounts']}) | {made} ({sum(minimum.values())})")
        print(f"total over {args.runs} daily runs: {totals[0]} calls, minimum {totals[1]} "
              f"({totals[0] / totals[1]:.2f}x); 429s: {simulator.stats.responses_429}")
    finally:
        server.stop()


if __name__ == "__main__":
    os.environ.setdefault("DRIFT_PII_SALT", "bench")
    main()
