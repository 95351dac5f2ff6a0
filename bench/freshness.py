"""Freshness: from a webhook POST to the change visible in the serving copy, under `dagster dev`
with the inbox sensor running (target: p95 under 60 s).

    .venv/bin/python bench/freshness.py [--events 6] [--spacing 20]

A simulator (in this process), the webhook receiver and `dagster dev` (own process group) run
on loopback against a fresh home. After an initial sync, each round closes an open conversation
in the simulator, POSTs the matching `conversation_status_updated` webhook to the receiver and
polls `serving/analytics.duckdb` until `marts.fct_conversations` shows it closed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from drift_pipeline.devserver import _dagster_command  # noqa: E402
from drift_pipeline.drift.simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402
from webhooks import free_loopback_port, start_receiver, stop_receiver, wait_until_healthy  # noqa: E402

BIN = Path(sys.executable).parent


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


def _served_status(serving: Path, conversation_id: int) -> str | None:
    try:
        conn = duckdb.connect(str(serving), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = conn.execute("SELECT status FROM marts.fct_conversations WHERE conversation_id = ?",
                           [conversation_id]).fetchall()
        return row[0][0] if row else None
    finally:
        conn.close()


def _post(url: str, payload: dict, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def measure_freshness(events: int = 6, spacing_s: float = 20.0, timeout_s: float = 240.0) -> dict:
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    simulator = Simulator(SimulatorConfig(seed=3, days=2, conversations_per_day=60, end=now,
                                          rate_limit_per_minute=60_000))
    with tempfile.TemporaryDirectory(prefix="drift-freshness-") as scratch, SimulatorServer(simulator) as server:
        home = Path(scratch) / "home"
        token = simulator.config.webhook_token  # what the simulated Drift signs its webhooks with
        env = dict(os.environ, DRIFT_PIPELINE_HOME=str(home), DRIFT_API_BASE_URL=server.base_url,
                   DRIFT_ACCESS_TOKEN=simulator.config.static_access_token, DRIFT_WEBHOOK_TOKEN=token,
                   DAGSTER_HOME=str(home / "dagster"))
        os.environ.update(env)
        from drift_pipeline.instance import ensure_dagster_home
        from drift_pipeline.settings import Settings

        ensure_dagster_home(Settings.from_env())
        today = now.date()
        sync = subprocess.run([str(BIN / "drift-pipeline"), "sync", "--start", str(today - timedelta(days=2)),
                               "--end", str(today + timedelta(days=1))], env=env, capture_output=True, text=True)
        if sync.returncode:
            raise RuntimeError(f"initial sync failed: {sync.stderr[-500:]}")
        port = free_loopback_port()
        receiver = start_receiver(home, token, port, Path(scratch) / "receiver.log")
        ui_port = free_loopback_port()
        dagster = subprocess.Popen(_dagster_command(str(ui_port)), cwd=ROOT, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=open(Path(scratch) / "dagster.log", "w"))
        latencies: list[float] = []
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}", receiver)
            _wait_http(f"http://127.0.0.1:{ui_port}/server_info", 180)
            serving = home / "serving" / "analytics.duckdb"
            candidates = [cid for cid, c in simulator.world.conversations.items()
                          if c["status"] == "open" and _served_status(serving, cid) == "open"]
            pending: dict[int, float] = {}
            deadline = None
            for round_number in range(events):
                conversation_id = candidates[round_number]
                payloads = simulator.world.set_status(conversation_id, "closed")
                for payload in payloads:
                    _post(f"http://127.0.0.1:{port}/webhooks", payload,
                          simulator.config.webhook_headers())
                pending[conversation_id] = time.monotonic()
                end_of_round = time.monotonic() + spacing_s
                while time.monotonic() < end_of_round:
                    _collect(serving, pending, latencies)
                    time.sleep(0.5)
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                _collect(serving, pending, latencies)
                time.sleep(0.5)
        finally:
            os.killpg(dagster.pid, signal.SIGTERM)
            try:
                dagster.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(dagster.pid, signal.SIGKILL)
            stop_receiver(receiver)
    ordered = sorted(latencies)

    def pct(fraction):
        return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else None

    return {"events": events, "seen": len(latencies), "lost": events - len(latencies),
            "p50_s": pct(0.5), "p95_s": pct(0.95), "max_s": ordered[-1] if ordered else None,
            "latencies_s": [round(v, 1) for v in latencies]}


def _collect(serving: Path, pending: dict[int, float], latencies: list[float]) -> None:
    for conversation_id, posted in list(pending.items()):
        if _served_status(serving, conversation_id) == "closed":
            latencies.append(time.monotonic() - posted)
            del pending[conversation_id]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6)
    parser.add_argument("--spacing", type=float, default=20.0, help="seconds between POSTs")
    args = parser.parse_args()
    result = measure_freshness(args.events, args.spacing)
    print(f"freshness POST -> serving copy under dagster dev: {result['seen']}/{result['events']} seen, "
          f"p50 {result['p50_s']:.1f} s, p95 {result['p95_s']:.1f} s (target < 60), max {result['max_s']:.1f} s")
    print(f"  each: {result['latencies_s']}")
    return 0 if result["lost"] == 0 and result["p95_s"] is not None and result["p95_s"] < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
