"""The Dagster instance lives inside $DRIFT_PIPELINE_HOME so runs, schedules and sensor cursors
persist with the data they describe, and each test home is isolated."""

from __future__ import annotations

import os
from pathlib import Path

from drift_pipeline.settings import Settings

# One run at a time: DuckDB allows one writer process, so a second run would only wait on the lock.
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
"""


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at $DRIFT_PIPELINE_HOME/dagster (unless the operator set one)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    # A run over a range of days announces each asset once with the range (Dagster's own
    # switch), not once per asset per day: thousands of event-log writes saved on a multi-year
    # backfill. Read by whichever process creates the run (this one, or `dagster dev`, which
    # inherits it). The price: partitions of a failed run show as missing, not failed;
    # raw.exports records the failure either way.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    os.environ["DRIFT_PIPELINE_HOME"] = str(settings.home)
    return home
