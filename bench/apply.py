"""API calls per touched conversation when the webhook inbox is applied (`apply-inbox`).

    .venv/bin/python bench/apply.py [--minutes 180] [--per-day 150] [--seed 7] [--json]

A simulator on loopback (a workspace of 2 days x `--per-day` conversations) is synced, then
advanced `--minutes` simulated minutes; every webhook it sends is POSTed, one at a time, to the
real receiver (as Drift delivers them: one inbox file per event at this pace), and the inbox is
applied in one `apply_inbox` call. Calls are counted by the simulator: by route, per URL, and
against the minimum (one detail call and the message pages of each touched conversation).
Runs against whichever `drift_pipeline` is first on the path (`PYTHONPATH=<another checkout>`
measures that one with the same inbox).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from drift_pipeline.drift.client import DriftClient  # noqa: E402
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402
from drift_pipeline.ingest.sync import ConversationSync  # noqa: E402
from drift_pipeline.settings import Settings  # noqa: E402
from drift_pipeline.warehouse.connection import open_warehouse  # noqa: E402
from drift_pipeline.webhooks.apply import apply_inbox  # noqa: E402
from drift_pipeline.webhooks.receiver import create_app  # noqa: E402

PAGE_SIZE = 50  # messages per page (drift-api.md)


def _sync(settings: Settings, start: datetime, end: datetime) -> None:
    async def go():
        async with DriftClient.from_settings(settings) as client:
            with open_warehouse(settings) as conn:
                await ConversationSync(client, conn, salt=settings.secret("pii_salt")).run(start, end)
    asyncio.run(go())


def _deliver(simulator: Simulator, settings: Settings, payloads: list[dict]) -> None:
    receiver_settings = replace(settings, webhook_token=simulator.config.webhook_token)

    async def go():
        app = create_app(receiver_settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
                for payload in payloads:
                    answer = await http.post("/webhooks", json=payload,
                                             headers=simulator.config.webhook_headers())
                    answer.raise_for_status()
    asyncio.run(go())


def _calls_by_url(simulator: Simulator) -> Counter | None:
    log = getattr(simulator.stats, "request_log", None)
    if log is None:  # a checkout whose simulator keeps no request log
        return None
    return Counter((route, path) for route, _, path, _ in log())


def measure_apply(minutes: float = 180, per_day: int = 150, seed: int = 7) -> dict:
    end = datetime(2026, 11, 15, tzinfo=timezone.utc)
    simulator = Simulator(SimulatorConfig(seed=seed, days=2, conversations_per_day=per_day, end=end,
                                          rate_limit_per_minute=60_000))
    with tempfile.TemporaryDirectory(prefix="drift-bench-apply-") as scratch, \
            SimulatorServer(simulator) as server:
        os.environ.update(DRIFT_PIPELINE_HOME=str(Path(scratch) / "home"),
                          DRIFT_API_BASE_URL=server.base_url, DRIFT_PII_SALT="bench-salt",
                          DRIFT_ACCESS_TOKEN=simulator.config.static_access_token)
        settings = Settings.from_env()
        settings.ensure_dirs()
        _sync(settings, (end - timedelta(days=2)).replace(tzinfo=None), end.replace(tzinfo=None))
        payloads = simulator.world.advance(minutes)
        _deliver(simulator, settings, payloads)
        files = len(list(settings.inbox_dir.glob("*.json")))
        simulator.stats.reset()
        result = apply_inbox(settings)
        by_route = dict(simulator.stats.by_route)
        by_url = _calls_by_url(simulator)
        touched = {p["data"]["conversationId"] if "conversationId" in p.get("data", {}) else p["data"].get("id")
                   for p in payloads
                   if p["type"] in ("new_message", "new_conversation", "conversation_status_updated",
                                    "conversation_participant_added", "conversation_participant_removed")}
        touched.discard(None)
        minimum = sum(1 + max(1, -(-len(simulator.world.messages[c]) // PAGE_SIZE)) for c in touched)
    calls = sum(by_route.values())
    return {
        "simulated_minutes": minutes, "events": len(payloads), "inbox_files": files,
        "touched_conversations": len(touched), "api_calls": calls, "calls_by_route": by_route,
        "calls_per_touched_conversation": round(calls / len(touched), 2) if touched else None,
        "minimum_calls": minimum,
        "repeated_urls": sum(n - 1 for n in by_url.values()) if by_url is not None else None,
        "events_applied": result.events_applied, "files_applied": result.files_applied,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=180)
    parser.add_argument("--per-day", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure_apply(args.minutes, args.per_day, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['events']} webhook events in {result['inbox_files']} inbox files touched "
          f"{result['touched_conversations']} conversations")
    print(f"apply-inbox: {result['api_calls']} API calls = {result['calls_per_touched_conversation']} "
          f"per touched conversation (minimum with every message page: {result['minimum_calls']}); "
          f"by route {result['calls_by_route']}; URLs asked again: {result['repeated_urls']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
