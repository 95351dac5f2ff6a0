"""`make demo`: the whole path against the bundled simulator, start to finish, then exit 0.

Simulator (14 days of seeded traffic) -> one Dagster run backfilling 14 daily partitions ->
dbt marts -> serving copy -> the headline metrics, read back from the serving copy.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from drift_pipeline.settings import Settings

DAYS = 14


def _table(rows: list[tuple], headers: list[str]) -> str:
    cells = [headers] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    from drift_pipeline.drift.simulator import Simulator, SimulatorConfig, SimulatorServer
    from drift_pipeline.runner import materialize_days
    from drift_pipeline.serving import headline_metrics

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
        os.environ.update({
            "DRIFT_PIPELINE_HOME": str(home),
            "DRIFT_API_BASE_URL": server.base_url,
            "DRIFT_ACCESS_TOKEN": config.static_access_token,
        })
        os.environ.pop("DAGSTER_HOME", None)
        settings = replace(Settings.from_env())
        today = now.date()
        start, end = today - timedelta(days=DAYS - 1), today + timedelta(days=1)
        print(f"simulator on {server.base_url}; backfilling {start}..{today} in one Dagster run "
              f"(DAGSTER_HOME={home / 'dagster'})")
        result = materialize_days(settings, start, end, with_dbt=True)
        calls = simulator.stats.requests_total
    rows = headline_metrics(settings)
    print(f"\nrun {result.run_id} succeeded: {calls} API calls, {time.monotonic() - started:.0f} s\n")
    print(f"headline metrics from {settings.serving_dir / 'analytics.duckdb'}:\n")
    print(_table(rows, ["day", "conversations", "FRT p50 min", "FRT p90 min", "handoff %", "open->close p50 h"]))
    print(f"\nnext: `make dev` for the Dagster UI; SQL on {settings.serving_dir / 'analytics.duckdb'} "
          "(README, 'For analysts').")
    return 0


if __name__ == "__main__":
    sys.exit(main())
