"""The one place that runs dbt outside the Dagster asset: refresh the marts, then publish.

The dbt asset (`assets/dbt.py`) builds and tests the models in a Dagster run; this module is
what the webhook path, replay, erasure and retention run between those builds: `dbt run
--select +marts` (the incremental models rebuild only what changed) and a new serving copy.
That path is seconds-sensitive (a webhook's way to the serving copy), so it runs dbt in this
process with the manifest already parsed (no interpreter start-up, no re-parse, no JSON
artifacts: about 5 s instead of 40-60 s for a handful of changed rows on a busy 2-core machine)
and leaves the staging views alone while their definitions are unchanged. When the project
changed after the manifest was parsed it runs the dbt CLI, which parses first.
dbt's console output goes to `$DRIFT_PIPELINE_HOME/logs/`, its logs under `dbt/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Iterator

from dagster_dbt import DbtCliResource
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from drift_pipeline.dbt_project import dbt_project, dbt_run_dir, ensure_manifest
from drift_pipeline.fsutil import append_json_line
from drift_pipeline.serving import publish
from drift_pipeline.settings import Settings
from drift_pipeline.webhooks.apply import TIMINGS_LOG

log = logging.getLogger(__name__)


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


# The view definitions `refresh_marts` last created, by checksum: while they are unchanged the
# views are left as they are (re-creating a view changes nothing but costs its turn in dbt).
VIEWS_STAMP = Path("dbt") / "views.sha256"


def _views_checksum(manifest: Path) -> str:
    """A hash of every view model's SQL and config in the manifest (what re-creating needs)."""
    nodes = json.loads(manifest.read_text()).get("nodes", {})
    views = sorted(
        (key, node.get("checksum", {}).get("checksum"), node.get("schema"), node.get("alias"))
        for key, node in nodes.items()
        if node.get("resource_type") == "model" and node.get("config", {}).get("materialized") == "view")
    return hashlib.sha256(json.dumps(views).encode()).hexdigest()


def _project_changed_since(manifest: Path) -> bool:
    """True when a model, macro or the project file is newer than the parsed manifest."""
    built = manifest.stat().st_mtime
    root = Path(dbt_project.project_dir)
    files = [root / "dbt_project.yml", *(root / "models").rglob("*"), *(root / "macros").rglob("*")]
    return any(f.stat().st_mtime > built for f in files if f.is_file())


_loaded_manifest: tuple[float, object] | None = None  # (mtime, dbt Manifest): parsed once a process


def _parsed_manifest(path: Path):
    global _loaded_manifest
    mtime = path.stat().st_mtime
    if _loaded_manifest is None or _loaded_manifest[0] != mtime:
        from dbt.artifacts.schemas.manifest import WritableManifest
        from dbt.contracts.graph.manifest import Manifest

        _loaded_manifest = (mtime, Manifest.from_writable_manifest(
            WritableManifest.read_and_check_versions(str(path))))
    return _loaded_manifest[1]


def _run_in_process(args: list[str], manifest: Path, run_dir: Path) -> bool:
    """Run dbt in this process with the parsed manifest (no interpreter start-up, no re-parse,
    no artifacts written: most of a small refresh's time otherwise); False when it cannot be
    used here (the project changed since the manifest was parsed), so the caller runs the CLI.
    Raises `DagsterDbtCliRuntimeError` when dbt fails, like the CLI path."""
    if _project_changed_since(manifest):
        return False
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome = dbtRunner(manifest=_parsed_manifest(manifest)).invoke([
            *args, "--project-dir", str(dbt_project.project_dir),
            "--profiles-dir", str(dbt_project.profiles_dir), "--target-path", str(run_dir),
            "--log-path", str(run_dir), "--no-write-json"])
    finally:
        # dbt-duckdb keeps the warehouse open in its process-wide environment; this process
        # publishes (and may write) next, so close it now.
        environment = DuckDBConnectionManager._ENV
        if environment is not None and getattr(environment, "conn", None) is not None:
            environment.conn.close()
            environment.conn = None
        DuckDBConnectionManager._ENV = None
    if not outcome.success:
        raise DagsterDbtCliRuntimeError(
            f"dbt {' '.join(args)} failed: {outcome.exception or 'see dbt.log in ' + str(run_dir)}")
    return True


def refresh_marts(settings: Settings) -> dict:
    """Refresh the marts' affected rows, then republish the serving copy; returns seconds spent
    in dbt and in publishing (also appended to `logs/timings.jsonl`).

    The models run without their tests: the incremental models rebuild just the conversations
    and days touched since their last build. Data tests run with every scheduled or backfill
    run, not on this seconds-sensitive path. The staging views are created once per change of
    their definitions (VIEWS_STAMP), not on every refresh; should one be missing anyway (a
    warehouse rebuilt by hand), the refresh runs again with them.
    """
    started = time.time()
    os.environ["DRIFT_PIPELINE_HOME"] = str(settings.home)  # the dbt profile reads it
    dbt = DbtCliResource(project_dir=dbt_project)
    manifest = ensure_manifest()
    stamp = settings.home / VIEWS_STAMP
    checksum = _views_checksum(manifest)
    views_current = stamp.exists() and stamp.read_text().strip() == checksum

    def run(select: list[str]) -> None:
        args = ["run", "--select", "+marts", *select]
        if _run_in_process(args, manifest, dbt_run_dir(settings, "refresh")):
            return
        dbt.cli(args, manifest=manifest, raise_on_error=True,
                target_path=dbt_run_dir(settings, "refresh")).wait()

    with dbt_output_to_file(settings, "last_marts_refresh"):
        try:
            run(["--exclude", "config.materialized:view"] if views_current else [])
        except DagsterDbtCliRuntimeError:
            if not views_current:
                raise
            log.warning("dbt failed with the staging views left as they were: running again with them")
            run([])
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(checksum + "\n")
    dbt_done = time.time()
    publish(settings)
    timings = {"kind": "marts", "started_at": round(started, 3), "finished_at": round(time.time(), 3),
               "dbt_seconds": round(dbt_done - started, 3),
               "publish_seconds": round(time.time() - dbt_done, 3), "views_skipped": views_current}
    append_json_line(settings.home / TIMINGS_LOG, timings)
    return timings
