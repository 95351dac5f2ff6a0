"""Runs assets through Dagster from the CLI: a range of days is one run, recorded in the instance."""

from __future__ import annotations

from datetime import date, timedelta

from drift_pipeline.instance import ensure_dagster_home
from drift_pipeline.settings import Settings


class RunFailed(RuntimeError):
    pass


def _root_cause(error) -> str:
    """The innermost error of Dagster's wrapped chain, as one line (`Class: message`)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (error.message or "").strip().splitlines()
    return message[0] if message else error.cls_name or "unknown error"


def materialize_days(settings: Settings, start: date, end: date, *, with_dbt: bool = True,
                     log_level: str = "CRITICAL"):
    """Materialize the raw assets (and the dbt models) for the daily partitions in [start, end)."""
    if end <= start:
        raise ValueError(f"--end ({end}) must be after --start ({start})")
    ensure_dagster_home(settings)
    from dagster import AssetSelection, DagsterInstance, materialize

    from drift_pipeline.definitions import defs

    last = end - timedelta(days=1)
    assets = list(defs.assets)
    selection = AssetSelection.assets(*defs.assets[0].keys)  # the raw sync
    if with_dbt:
        selection = AssetSelection.all()
    tags = {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
        "drift/trigger": "cli",
    }
    with DagsterInstance.get() as instance:
        result = materialize(
            assets,
            instance=instance,
            resources=defs.resources,
            tags=tags,
            selection=selection,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        reason = _root_cause(failure.step_failure_data.error) if failure else "see the Dagster run"
        raise RunFailed(f"run {result.run_id} failed in {failure.step_key if failure else '?'}: {reason}")
    return result
