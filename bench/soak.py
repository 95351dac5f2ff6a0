"""Webhook soak: mixed events at 20/s with duplicates and out-of-order delivery while the inbox is
applied and a scheduled sync runs; run by `bench/webhooks.py --soak [--minutes 10]`.

On loopback: a simulator at Drift's 600 requests/minute, the real receiver (`webhooks serve`)
in its own process, and an applier process standing in for the Dagster sensor and its single
run slot: every `SENSOR_INTERVAL_SECONDS` it applies the inbox and refreshes the marts (what
`apply_webhooks_job` does), and half-way through it runs the scheduled sync of the simulated
days (sync, marts), in that same slot, like `max_concurrent_runs: 1`. The event source advances
the simulated workspace and POSTs its webhooks at `--rate`/s: 10% are sent twice, and each
block of 40 is shuffled.

Prints: API calls per touched conversation, lag from POST to applied and to the serving copy
(p50/p95/max), 429s, inbox depth over time, the seen-ids file size; then checks, once the
inbox is drained, that the marts equal those of a clean re-sync of the same workspace (the
columns a sync can know: status history from webhooks is finer than a re-sync's).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhooks import free_loopback_port, start_receiver, stop_receiver, wait_until_healthy  # noqa: E402

from drift_simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402
from drift_pipeline.marts import refresh_timings  # noqa: E402
from drift_pipeline.sensors import SENSOR_INTERVAL_SECONDS  # noqa: E402

# Columns of marts.fct_conversations a clean re-sync derives exactly as the webhook path does.
COMPARED = ("org_id", "conversation_id", "status", "contact_id", "created_at", "message_count",
            "contact_message_count", "agent_message_count", "bot_message_count", "has_bot",
            "handed_off")

_APPLIER = """
import asyncio, json, os, sys, time
from datetime import datetime
from drift_pipeline.settings import Settings
from drift_pipeline.runner import apply_inbox_and_refresh, refresh_marts
from drift_pipeline.drift.client import DriftClient
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.warehouse.connection import open_warehouse

settings = Settings.from_env()
stop_file, sync_at, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
window = [datetime.fromisoformat(sys.argv[4]), datetime.fromisoformat(sys.argv[5])]
synced = False

async def scheduled_sync():
    async with DriftClient.from_settings(settings) as client:
        with open_warehouse(settings) as conn:
            stats = await ConversationSync(client, conn, salt=settings.secret("pii_salt")).run(*window)
            print(json.dumps({"sync": stats.as_metadata()}), flush=True)

while True:
    started = time.time()
    if not synced and started >= sync_at:
        asyncio.run(scheduled_sync())
        refresh_marts(settings)
        synced = True
    result = apply_inbox_and_refresh(settings)
    print(json.dumps({"apply": {k: result[k] for k in ("files_applied", "events_applied", "api_calls")}}),
          flush=True)
    if os.path.exists(stop_file) and not any(settings.inbox_dir.glob("*.json")):
        break
    time.sleep(max(0.0, interval - (time.time() - started)))
"""


def _pct(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))], 1) if ordered else None


def _fct(home: Path) -> list[tuple]:
    conn = duckdb.connect(str(home / "serving" / "analytics.duckdb"), read_only=True)
    try:
        return conn.execute(f"SELECT {', '.join(COMPARED)} FROM marts.fct_conversations ORDER BY ALL").fetchall()
    finally:
        conn.close()


def soak(minutes: float = 10.0, rate: float = 20.0, seed: int = 5) -> dict:
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    # Busy enough that 20 events/s is about half a simulated minute per second; the initial sync
    # and the clean re-sync run unthrottled, the soak itself at Drift's 600/min.
    config = SimulatorConfig(seed=seed, days=1, conversations_per_day=2000, end=end,
                             rate_limit_per_minute=60_000)
    simulator = Simulator(config)
    world = simulator.world
    scratch = Path(tempfile.mkdtemp(prefix="drift-soak-"))
    home, clean_home = scratch / "home", scratch / "clean"
    with SimulatorServer(simulator) as server:
        env = dict(os.environ, DRIFT_PIPELINE_HOME=str(home), DRIFT_API_BASE_URL=server.base_url,
                   DRIFT_ACCESS_TOKEN=config.static_access_token, DRIFT_PII_SALT="soak-salt",
                   PYTHONPATH=str(ROOT))
        env.pop("DAGSTER_HOME", None)
        start_day = (end - timedelta(days=1)).date()
        window = [datetime.combine(start_day, datetime.min.time()),
                  datetime.combine(end.date() + timedelta(days=2), datetime.min.time())]
        initial = subprocess.run([str(Path(sys.executable).parent / "drift-pipeline"), "sync", "--start",
                                  str(start_day), "--end", str(end.date() + timedelta(days=1))],
                                 env=env, capture_output=True, text=True)
        if initial.returncode:
            raise RuntimeError(f"initial sync failed: {initial.stderr[-500:]}")
        simulator.set_rate_limit(600)
        port = free_loopback_port()
        receiver = start_receiver(home, config.webhook_token, port, scratch / "receiver.log")
        wait_until_healthy(f"http://127.0.0.1:{port}", receiver)
        calls_before, before_429 = simulator.stats.requests_total, simulator.stats.responses_429
        stop_file = scratch / "stop"
        started = time.time()
        applier = subprocess.Popen(
            [sys.executable, "-c", _APPLIER, str(stop_file), str(started + minutes * 30),
             str(SENSOR_INTERVAL_SECONDS), window[0].isoformat(), window[1].isoformat()],
            env=env, stdout=open(scratch / "applier.log", "w"), stderr=subprocess.STDOUT)
        posted: dict[str, float] = {}
        touched: set[int] = set()
        depth: list[tuple[float, int]] = []
        sent = duplicates = 0
        rng = random.Random(seed)
        deadline = started + minutes * 60

        def sample_depth() -> None:
            while time.time() < deadline + 600 and applier.poll() is None:
                depth.append((round(time.time() - started), len(list((home / "inbox").glob("*.json")))))
                time.sleep(10)

        threading.Thread(target=sample_depth, daemon=True).start()
        recent: list[dict] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            buffer: list[dict] = []
            while time.time() < deadline:
                if len(buffer) < 40:
                    block = []
                    while len(block) < 40:
                        block += world.advance(1)
                    rng.shuffle(block)  # out of order
                    buffer += block
                # A redelivery of a recent event now and then, in the original's place in line
                # (which then waits for the next slot).
                if recent and rng.random() < 0.1:
                    payload, duplicates = rng.choice(recent), duplicates + 1
                else:
                    payload = buffer.pop(0)
                answer = http.post("/webhooks", json=payload, headers=config.webhook_headers())
                answer.raise_for_status()
                posted.setdefault(answer.json()["event_id"], time.time())
                data = payload.get("data") or {}
                if isinstance(data.get("conversationId"), int):
                    touched.add(data["conversationId"])
                recent = (recent + [payload])[-200:]
                sent += 1
                time.sleep(max(0.0, started + sent / rate - time.time()))
            # Everything the workspace did is delivered (Drift retries until it is), so a clean
            # re-sync sees the same workspace.
            for payload in buffer:
                answer = http.post("/webhooks", json=payload, headers=config.webhook_headers())
                answer.raise_for_status()
                posted.setdefault(answer.json()["event_id"], time.time())
                sent += 1
        stop_file.touch()
        applier.wait(timeout=1200)
        stop_receiver(receiver)
        soak_calls = simulator.stats.requests_total - calls_before
        responses_429 = simulator.stats.responses_429 - before_429
        seen_ids_bytes = (home / "state" / "webhook_seen_ids").stat().st_size
        conn = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        applied = dict(conn.execute("SELECT event_id, epoch(applied_at) FROM raw.webhook_events").fetchall())
        conn.close()
        timings = [json.loads(line) for line in (home / "logs" / "timings.jsonl").read_text().splitlines()]
        refreshed = sorted(t["finished_at"] for t in refresh_timings(timings) if t["published"])
        applied_lag, visible_lag = [], []
        for identity, at in posted.items():
            if identity not in applied:
                continue
            applied_lag.append(applied[identity] - at)
            visible = next((r for r in refreshed if r >= applied[identity]), None)
            if visible is not None:
                visible_lag.append(visible - at)
        lost = sum(1 for identity in posted if identity not in applied)
        # A clean re-sync of the same workspace (now), compared with what the webhooks built.
        simulator.set_rate_limit(60_000)
        clean_env = dict(env, DRIFT_PIPELINE_HOME=str(clean_home))
        clean = subprocess.run([str(Path(sys.executable).parent / "drift-pipeline"), "sync", "--start",
                                str(start_day), "--end", str(end.date() + timedelta(days=1))], env=clean_env,
                               capture_output=True, text=True)
        if clean.returncode:
            raise RuntimeError(f"clean re-sync failed: {clean.stderr[-500:]}")
        subprocess.run([sys.executable, "-c", "from drift_pipeline.settings import Settings; "
                        "from drift_pipeline.runner import refresh_marts; refresh_marts(Settings.from_env())"],
                       env=env, check=True, capture_output=True)
        ours, theirs = _fct(home), _fct(clean_home)
    return {
        "minutes": minutes, "rate_per_s": rate, "posted": sent, "redeliveries": duplicates,
        "distinct_events": len(posted), "lost": lost, "touched_conversations": len(touched),
        "api_calls": soak_calls, "calls_per_touched_conversation": round(soak_calls / max(1, len(touched)), 2),
        "responses_429": responses_429,
        "lag_applied_s": {"p50": _pct(applied_lag, .5), "p95": _pct(applied_lag, .95),
                          "max": _pct(applied_lag, 1)},
        "lag_visible_s": {"p50": _pct(visible_lag, .5), "p95": _pct(visible_lag, .95),
                          "max": _pct(visible_lag, 1)},
        "inbox_depth": depth, "seen_ids_bytes": seen_ids_bytes,
        "marts_equal_clean_resync": ours == theirs, "marts_rows": len(ours),
        "marts_rows_differing": len(set(ours) ^ set(theirs)), "scratch": str(scratch),
    }


def print_soak(result: dict) -> None:
    print(f"soak {result['minutes']} min at {result['rate_per_s']}/s: posted {result['posted']} "
          f"({result['redeliveries']} redeliveries), {result['distinct_events']} distinct events, "
          f"lost {result['lost']}")
    print(f"API calls {result['api_calls']} for {result['touched_conversations']} touched conversations = "
          f"{result['calls_per_touched_conversation']} per conversation (scheduled sync included); "
          f"429s {result['responses_429']}")
    print(f"lag POST -> applied {result['lag_applied_s']}, -> serving copy {result['lag_visible_s']}")
    print(f"inbox depth (s, files): {result['inbox_depth']}")
    print(f"seen-ids file {result['seen_ids_bytes']} bytes; marts equal a clean re-sync: "
          f"{result['marts_equal_clean_resync']} ({result['marts_rows']} rows, "
          f"{result['marts_rows_differing']} differing)")
