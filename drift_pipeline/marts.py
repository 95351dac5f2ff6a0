"""What the dbt asset and the serving assets share about a marts build: where dbt's console
output goes, the profile's environment, the timings lines, and which views dbt created.

The marts are built only by the dbt asset (`assets/dbt.py`), in a Dagster run, whoever starts
it: a schedule, the webhook sensor, or the CLI (`runner.refresh_marts`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterator

import duckdb

from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import open_warehouse


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


def timing_record(mode: str, run_id: str | None, started: float, dbt_done: float, published: float | None,
                  *, views_kept: bool = False, in_process: bool = False) -> dict:
    """The `kind: marts` line of `logs/timings.jsonl` for one marts refresh or build: when it
    started, when the serving copy was in place (`finished_at`; the end of dbt when nothing was
    published), and the seconds dbt and the publish took. bench/freshness.py and bench/soak.py
    join it with the apply pass's line."""
    finished = published if published is not None else dbt_done
    return {"kind": "marts", "mode": mode, "run_id": run_id, "views_kept": views_kept,
            "dbt_in_process": in_process,
            "started_at": round(started, 3), "finished_at": round(finished, 3),
            "dbt_seconds": round(dbt_done - started, 3),
            "publish_seconds": round(published - dbt_done, 3) if published is not None else None,
            "published": published is not None}


def publish_timing_record(run_id: str | None, started: float, finished: float) -> dict:
    """The `kind: publish` line of `logs/timings.jsonl`: the serving copy asset's publish."""
    return {"kind": "publish", "run_id": run_id, "started_at": round(started, 3),
            "finished_at": round(finished, 3), "publish_seconds": round(finished - started, 3)}


def refresh_timings(records: list[dict]) -> list[dict]:
    """The `kind: marts` lines of a timings log, each joined with its run's publish line: the
    marts refresh as one record, `finished_at` when the serving copy was in place (the dbt
    step's end when the run published nothing), `publish_seconds` and `published` set from
    the publish. What bench/freshness.py and bench/soak.py measure lags with."""
    published = {r["run_id"]: r for r in records if r.get("kind") == "publish" and r.get("run_id")}
    joined = []
    for record in records:
        if record.get("kind") != "marts":
            continue
        publish = published.get(record.get("run_id"))
        if publish is not None and not record.get("published"):
            record = {**record, "finished_at": publish["finished_at"], "published": True,
                      "publish_seconds": publish["publish_seconds"]}
        joined.append(record)
    return joined


# The view models' definitions as dbt last created them (a checksum, under state/): the webhook
# refresh leaves the views alone while it matches the manifest and they exist.
VIEWS_STAMP = "dbt_views.sha256"
# What a dbt command adds to leave every view model out.
EXCLUDE_VIEWS = ["--exclude", "config.materialized:view"]


def _view_models(manifest: Path) -> list[dict]:
    nodes = json.loads(manifest.read_text()).get("nodes", {})
    return sorted((node for node in nodes.values()
                   if node.get("resource_type") == "model"
                   and node.get("config", {}).get("materialized") == "view"),
                  key=lambda node: node["unique_id"])


def _views_checksum(views: list[dict]) -> str:
    """What creating the views depends on: each one's SQL file (dbt's checksum), where it goes
    and its config."""
    return hashlib.sha256(json.dumps(
        [(view["unique_id"], view.get("checksum", {}).get("checksum"), view.get("database"),
          view.get("schema"), view.get("alias"), view.get("config")) for view in views],
        sort_keys=True, default=str).encode()).hexdigest()


def views_current(settings: Settings, manifest: Path) -> bool:
    """True when every view model exists in the warehouse as the manifest defines it (the
    checksum recorded when dbt last created them all matches): a refresh need not create
    them again. A view re-created with the same SQL changes nothing, and the views are
    late-bound, so new rows in the raw tables show through them as they are."""
    stamp = settings.state_dir / VIEWS_STAMP
    views = _view_models(manifest)
    try:
        if stamp.read_text().strip() != _views_checksum(views):
            return False
    except OSError:
        return False
    try:
        with open_warehouse(settings) as conn:
            existing = {(schema, name) for schema, name in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'VIEW'"
            ).fetchall()}
    except duckdb.Error:
        return False  # another process holds the warehouse: dbt will say so itself
    return all((view["schema"], view["alias"]) in existing for view in views)


def record_views_created(settings: Settings, manifest: Path) -> None:
    """After a dbt command that created every view model: what `views_current` compares with."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings.state_dir / VIEWS_STAMP, _views_checksum(_view_models(manifest)) + "\n")

