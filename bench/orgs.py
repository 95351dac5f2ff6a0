"""Several orgs in one deployment: two simulated workspaces behind one host, each limited to its
own `--rate-limit` per minute, synced side by side (what a run without the `drift/org` tag does)
and one after another (what two per-org runs do), each into a fresh warehouse.

    .venv/bin/python bench/orgs.py [--days 1] [--conversations-per-day 40] [--rate-limit 600]

Every figure is measured in this run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_duckdb import DuckDBResource  # noqa: E402

from drift_pipeline.assets.drift_raw import run_sync  # noqa: E402
from drift_pipeline.drift.authorize import auth_exchange  # noqa: E402
from drift_simulator import (  # noqa: E402
    MultiOrgSimulator,
    Simulator,
    SimulatorConfig,
    SimulatorServer,
)
from drift_pipeline.resources import DriftApiResource  # noqa: E402
from drift_pipeline.settings import Settings  # noqa: E402

ORGS = (21000001, 21000002)


def one_pass(base_url: str, simulators: dict, args, *, side_by_side: bool) -> dict:
    """A fresh home with both orgs exchanged, then one sync of the whole window."""
    home = Path(tempfile.mkdtemp(prefix="bench-orgs-"))
    os.environ.update(DRIFT_PIPELINE_HOME=str(home), DRIFT_API_BASE_URL=base_url,
                      DRIFT_CLIENT_ID="sim-client-id", DRIFT_CLIENT_SECRET="sim-client-secret")
    os.environ.pop("DRIFT_ACCESS_TOKEN", None)
    settings = Settings.from_env()
    settings.ensure_dirs()
    for org in ORGS:
        auth_exchange(settings, simulators[org].issue_authorization_code())
    for simulator in simulators.values():
        simulator.stats.reset()
        simulator.set_rate_limit(args.rate_limit)
    duck = DuckDBResource(database=str(settings.warehouse_path), connection_config=settings.duckdb_config())
    end = args.end.replace(tzinfo=None)
    start = end - timedelta(days=args.days)
    started = time.monotonic()
    if side_by_side:
        stats = run_sync(DriftApiResource.for_settings(settings), duck, start, end)
    else:
        stats = [s for org in ORGS for s in run_sync(DriftApiResource.for_settings(settings), duck, start, end, org_ids=[org])]
    seconds = time.monotonic() - started
    served = {org: simulators[org].stats.snapshot() for org in ORGS}
    return {
        "seconds": round(seconds, 2),
        "calls": {s.org_id: s.api_calls for s in stats},
        "http_429": {s.org_id: s.responses_429 for s in stats},
        "conversations": {s.org_id: s.conversations_fetched for s in stats},
        "served_requests": {org: snap.get("requests_total") for org, snap in served.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--conversations-per-day", type=int, default=40)
    parser.add_argument("--rate-limit", type=int, default=600)
    args = parser.parse_args()
    args.end = datetime(2026, 11, 15, tzinfo=timezone.utc)
    simulators = {
        org: Simulator(SimulatorConfig(seed=seed, org_id=org, static_access_token=f"static-{org}",
                                       days=args.days, conversations_per_day=args.conversations_per_day,
                                       rate_limit_per_minute=args.rate_limit, end=args.end))
        for seed, org in zip((11, 12), ORGS)
    }
    with SimulatorServer(MultiOrgSimulator(list(simulators.values()))) as server:
        together = one_pass(server.base_url, simulators, args, side_by_side=True)
        apart = one_pass(server.base_url, simulators, args, side_by_side=False)
    print(f"two orgs, {args.days} day(s) x {args.conversations_per_day} conversations each, "
          f"{args.rate_limit}/min per org")
    for name, result in (("side by side (one run, every org)", together), ("one org after the other", apart)):
        calls = sum(result["calls"].values())
        print(f"  {name}: {result['seconds']} s, {calls} calls ({sum(result['http_429'].values())} x 429), "
              f"{calls / result['seconds'] * 60:.0f} calls/min in all; per org: calls {result['calls']}, "
              f"served {result['served_requests']}, conversations {result['conversations']}")


if __name__ == "__main__":
    main()
