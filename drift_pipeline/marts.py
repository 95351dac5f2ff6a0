"""The one place that runs dbt outside the Dagster asset: refresh the marts, then publish.

The dbt asset (`assets/dbt.py`) builds and tests the models in a Dagster run; this module is
what the webhook path, replay, erasure and retention run between those builds: `dbt run
--select +marts` (the incremental models rebuild only what changed) and a new serving copy.
dbt's console output goes to `$DRIFT_PIPELINE_HOME/logs/`, its artifacts under `dbt/`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator


from drift_pipeline.dbt_project import DbtCli, dbt_environment, dbt_project, dbt_run_dir, dbt_vars, ensure_manifest
from drift_pipeline.serving import publish
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import exclusive_build

# Models only, with the vars every pipeline invocation passes (so it reuses the last run's
# partial parse).
REFRESH_ARGS = ["run", "--select", "+marts", *dbt_vars()]


@contextlib.contextmanager
def dbt_output_to_file(settings: Settings, name: str) -> Iterator[None]:
    """Send dbt's console output (written to stdout by dagster-dbt) and dagster's INFO chatter
    to `$DRIFT_PIPELINE_HOME/logs/<name>.log`: commands print one line, the details are kept."""
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    dagster_logger = logging.getLogger("dagster")
    level = dagster_logger.level
    dagster_logger.setLevel(logging.WARNING)
    try:
        with open(log_dir / f"{name}.log", "w") as handle, contextlib.redirect_stdout(handle):
            yield
    finally:
        dagster_logger.setLevel(level)


def point_dbt_at(settings: Settings) -> None:
    """dbt's profile (dbt_project/profiles.yml) finds the warehouse through
    $DRIFT_PIPELINE_HOME, and dagster-dbt starts dbt with this process's environment: the one
    place that sets it for a dbt invocation."""
    os.environ.update(dbt_environment(settings))  # the home, or the postgres target and its URL


def refresh_marts(settings: Settings) -> None:
    """Refresh the marts' affected rows, then republish the serving copy.

    The models run without their tests: the incremental models rebuild just the conversations
    and days touched since their last build. Data tests run with every scheduled or backfill
    run, not on this seconds-sensitive path.
    """
    point_dbt_at(settings)
    dbt = DbtCli(project_dir=dbt_project)
    with exclusive_build(settings), dbt_output_to_file(settings, "last_marts_refresh"):
        dbt.cli(REFRESH_ARGS, manifest=ensure_manifest(), raise_on_error=True,
                target_path=dbt_run_dir(settings, "refresh")).wait()
        publish(settings)
