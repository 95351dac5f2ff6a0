"""`make demo`: the pipeline's whole path against the simulator, start to finish, then exit 0.

It lives with the simulator, not in `drift_pipeline`, so the pipeline's wheel carries no demo;
it drives the pipeline only through its public functions (runner, serving, the CLI).

Simulator (14 days of seeded traffic) -> one Dagster run backfilling 14 daily partitions ->
dbt marts -> serving copy; then 45 minutes of live activity as webhooks, and the widget events a
site would forward (UTM and landing page per conversation), through the receiver and the sensor's
apply code; then the headline metrics and the top playbooks by meetings booked, read back from
the serving copy, and the report's path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from drift_pipeline.report.page import REPORT_FILENAME
from drift_pipeline.settings import Settings
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer

DAYS = 14
WIDGET_SECRET = "demo-widget-secret"
# (weight, utm_source, utm_medium, utm_campaign, landing page) of the simulated site's traffic;
# None: a visit without UTM. A share of conversations has no widget event at all (untracked).
TRAFFIC = (
    (30, "google", "cpc", "brand-search", "/pricing"),
    (18, "google", "organic", None, "/blog/live-chat-benchmarks"),
    (14, None, None, None, "/"),
    (12, "newsletter", "email", "november-digest", "/features/bots"),
    (10, "linkedin", "social", "q4-abm", "/demo"),
    (6, "g2", "referral", None, "/compare"),
)
TRACKED_SHARE = 0.85


def _table(rows: list[tuple], headers: list[str]) -> str:
    cells = [headers] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def simulated_widget_events(conversations: list[dict], seed: int) -> list[dict]:
    """The `conversation:start` events a site's widget would forward (docs/widget.md) for these
    conversations: UTM and landing page drawn from TRAFFIC, fired as the conversation starts.
    A few carry a field the receiver must drop (an email typed into a form)."""
    import random

    rng = random.Random(seed)
    weights = [t[0] for t in TRAFFIC]
    events = []
    for conversation in sorted(conversations, key=lambda c: c["id"]):
        if rng.random() > TRACKED_SHARE:
            continue
        _, source, medium, campaign, page = rng.choices(TRAFFIC, weights)[0]
        event = {"type": "conversation:start", "conversationId": conversation["id"],
                 "utm": {"source": source, "medium": medium, "campaign": campaign},
                 "page": f"https://www.example.com{page}?ref=chat",
                 "occurredAt": conversation["createdAt"] - rng.randint(0, 3000)}
        if rng.random() < 0.03:
            event["email"] = f"visitor{conversation['id']}@example.com"
        events.append(event)
    return events


def _drift_pipeline(env: dict[str, str], *args: str) -> str:
    """`drift-pipeline <args>` as a user runs it, with the demo's environment; its output."""
    done = subprocess.run([sys.executable, "-m", "drift_pipeline.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"drift-pipeline {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _deliver_webhooks(simulator, env: dict[str, str], minutes: float) -> dict:
    """45 simulated minutes of Drift activity through the near-real-time path: Drift's POSTs and
    the site's signed widget events -> the receiver (its own process) -> inbox files -> the
    sensor's apply code -> marts -> serving."""
    import httpx

    from drift_pipeline.webhooks.widget import SIGNATURE_HEADER, sign

    started = time.monotonic()
    port = _free_port()
    env = dict(env, DRIFT_WEBHOOK_TOKEN=simulator.config.webhook_token, DRIFT_WIDGET_SECRET=WIDGET_SECRET)
    receiver = subprocess.Popen([sys.executable, "-m", "drift_pipeline.cli", "webhooks", "serve", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(150):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            payloads = simulator.world.advance(minutes=minutes)
            for payload in payloads:
                http.post("/webhooks", json=payload,
                          headers=simulator.config.webhook_headers()).raise_for_status()
            widget_events = simulated_widget_events(list(simulator.world.conversations.values()),
                                                    simulator.config.seed)

            def relay(event: dict) -> httpx.Response:
                # What the site's backend relay does (docs/widget.md): sign the exact bytes.
                body = json.dumps(event).encode()
                return http.post("/widget-events", content=body,
                                 headers={"Content-Type": "application/json",
                                          SIGNATURE_HEADER: sign(WIDGET_SECRET, body)})

            # Many visitors at once, as on a site: the receiver groups concurrent events into
            # few inbox files, which is also what keeps applying them quick.
            with ThreadPoolExecutor(max_workers=16) as pool:
                for response in pool.map(relay, widget_events):
                    response.raise_for_status()
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
    result = json.loads(_drift_pipeline(env, "apply-inbox"))
    return {"posted": len(payloads), "widget_posted": len(widget_events),
            "seconds": time.monotonic() - started, **result}


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # dagster's loggers set their own INFO level
        handler.setLevel(logging.WARNING)
    from drift_pipeline.serving import headline_metrics, top_playbooks

    base = Settings.from_env()
    home = base.home / "demo"
    shutil.rmtree(home, ignore_errors=True)  # the demo always starts from nothing
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    # The simulated limit is raised so the demo takes about a minute; `bench/` measures pacing at
    # Drift's real 600/min.
    config = SimulatorConfig(seed=7, days=DAYS, conversations_per_day=300, end=now, rate_limit_per_minute=30_000)
    started = time.monotonic()
    print(f"simulating {DAYS} days of Drift traffic ({config.conversations_per_day} conversations a day)...")
    simulator = Simulator(config)
    with SimulatorServer(simulator) as server:
        # What a user exports before running `drift-pipeline`; the demo's runs are those commands.
        env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
        env.update(DRIFT_PIPELINE_HOME=str(home), DRIFT_API_BASE_URL=server.base_url,
                   DRIFT_ACCESS_TOKEN=config.static_access_token)
        settings = Settings.from_env(env)
        today = now.date()
        start, end = today - timedelta(days=DAYS - 1), today + timedelta(days=1)
        print(f"simulator on {server.base_url}; backfilling {start}..{today} in one Dagster run "
              f"(DAGSTER_HOME={home / 'dagster'}):\n  drift-pipeline sync --start {start} --end {end}")
        print(_drift_pipeline(env, "sync", "--start", start.isoformat(), "--end", end.isoformat()))
        calls = simulator.stats.requests_total
        print(f"{calls} API calls, {time.monotonic() - started:.0f} s")
        applied = _deliver_webhooks(simulator, env, minutes=45)
        print(f"webhooks: {applied['posted']} events POSTed to the receiver, {applied['events_applied'] - applied['widget_events_applied']} applied "
              f"({applied['conversations_refetched']} conversations re-fetched, {applied['status_events']} status "
              f"changes); widget events: {applied['widget_posted']} POSTed, "
              f"{applied['widget_events_applied']} applied ({applied['widget_fields_dropped']} "
              f"fields dropped by the privacy filter); marts refreshed and republished in "
              f"{applied['seconds']:.0f} s\n")
    rows = headline_metrics(settings)
    print(f"headline metrics from {settings.serving_dir / 'analytics.duckdb'}:\n")
    print(_table(rows, ["day", "conversations", "FRT p50 min", "FRT p90 min", "handoff %", "open->close p50 h"]))
    playbooks = top_playbooks(settings)
    print("\ntop playbooks by meetings booked (conversations they started that booked a meeting):\n")
    print(_table(playbooks, ["playbook", "conversations", "meetings booked", "meeting rate %"])
          if playbooks else "no conversation was started by a playbook")
    print(f"\nnext: `make dev` for the Dagster UI; SQL on {settings.serving_dir / 'analytics.duckdb'} "
          "(README, 'For analysts').")
    print(f"report: {settings.serving_dir / REPORT_FILENAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
