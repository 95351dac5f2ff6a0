"""Benchmark: how close does the Drift client run to the rate limit without being refused?

Starts the bundled simulator limited to `--limit` requests/minute (600 by default, Drift's
usual limit), runs the client flat out with `--concurrency` workers for `--seconds`, and prints
the sustained requests/minute, its share of the limit, and the 429s.
Target: at least 90% of the limit with under 1% of the answers 429.

    .venv/bin/python bench/client.py [--seconds 60] [--limit 600] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

try:
    import drift_pipeline  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift_pipeline.drift.client import DriftClient
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run flat out (default 60)")
    parser.add_argument("--limit", type=int, default=600, help="simulator limit, requests/minute (default 600)")
    parser.add_argument("--concurrency", type=int, default=8, help="client max_concurrency (default 8)")
    parser.add_argument("--latency", type=float, default=0.02, help="simulated server latency, seconds (default 0.02)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.limit <= 0 or args.concurrency < 1:
        parser.error("--seconds and --limit must be positive, --concurrency at least 1")
    return args


async def flat_out(client: DriftClient, conversation_ids: list[int], seconds: float, concurrency: int) -> tuple[int, float]:
    """Every worker asks for the next conversation as soon as its last answer came back."""
    ids = itertools.cycle(conversation_ids)
    done = 0
    started = time.monotonic()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await client.get_conversation(next(ids))
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SimulatorConfig(seed=7, days=1, conversations_per_day=50,
                             end=datetime(2026, 11, 15, tzinfo=timezone.utc), rate_limit_per_minute=args.limit)
    sim = Simulator(config, latency_seconds=args.latency)
    conversation_ids = sorted(sim.world.conversations)

    with SimulatorServer(sim) as server:
        async def run():
            async with DriftClient(server.base_url, access_token=config.static_access_token,
                                   max_concurrency=args.concurrency) as client:
                done, elapsed = await flat_out(client, conversation_ids, args.seconds, args.concurrency)
                return done, elapsed, client.stats

        print(f"simulator at {server.base_url}: limit {args.limit}/min, latency {args.latency * 1000:.0f} ms; "
              f"running {args.concurrency} workers for {args.seconds:g} s ...", flush=True)
        done, elapsed, stats = asyncio.run(run())
        server_429 = sim.stats.responses_429
        peak = sim.stats.peak_in_flight

    per_minute = done / elapsed * 60.0
    share_429 = stats.responses_429 / stats.calls * 100.0 if stats.calls else 0.0
    print(f"requests answered: {done} in {elapsed:.1f} s (HTTP attempts {stats.calls}, retries {stats.retries})")
    print(f"sustained: {per_minute:.1f} requests/minute = {per_minute / args.limit * 100.0:.1f}% of the limit")
    print(f"429s: {stats.responses_429} ({share_429:.2f}% of attempts; simulator counted {server_429})")
    print(f"lowest X-RateLimit-Remaining seen: {stats.min_remaining}; peak in flight: {peak}; "
          f"time spent pacing: {stats.throttled_seconds:.1f} s across workers")
    ok = per_minute >= 0.9 * args.limit and share_429 < 1.0
    print("target (>= 90% of the limit, < 1% 429): " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
