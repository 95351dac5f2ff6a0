"""The dbt project, loaded once for Dagster (`DbtProject`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import uuid
from datetime import datetime, timezone
from importlib.metadata import version as installed_version
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dagster_dbt import DbtProject

from drift_pipeline.adapters import DbtCli
from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.schema import RAW_TABLES

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


# This environment's dbt: a venv used without activation has it beside python, not on PATH.
VENV_DBT = Path(sys.executable).parent / "dbt"


def _prepare_manifest() -> None:
    """`dbt parse` (what dagster-dbt's preparer runs, with this environment's dbt: the
    preparer runs `dbt` from PATH, which a venv used without activation does not have; the
    project has no packages to install), then the fingerprint of what it parsed beside the
    manifest (`manifest_current`)."""
    fingerprint = project_fingerprint()  # before parsing: an edit during the parse parses again
    dbt_cli().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()
    record_manifest_fingerprint(fingerprint)


def record_manifest_fingerprint(fingerprint: str | None = None) -> None:
    """Mark the manifest as parsed from the project's files as they are now (`manifest_current`).
    `make install` calls it after its `dbt parse`, so `dagster dev` starts without parsing again
    (measured: the UI test's dev server parsed in its first 40 s)."""
    atomic_write_text(_manifest_fingerprint_path(), fingerprint or project_fingerprint())


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_cli() -> DbtCli:
    """The pipeline's dbt resource: this project, this environment's dbt (PATH untouched)."""
    return DbtCli(project_dir=dbt_project, dbt_executable=str(VENV_DBT) if VENV_DBT.exists() else "dbt")


# Run artifacts of the last few dbt invocations are kept for debugging; older ones are removed.
KEEP_DBT_RUNS = 20


PARTIAL_PARSE = "partial_parse.msgpack"


def dbt_run_dir(settings: Settings, label: str) -> Path:
    """A fresh folder under `$DRIFT_PIPELINE_HOME/dbt/` for one dbt invocation's artifacts and
    logs (compiled SQL, run_results.json, dbt.log): never in the checkout, one per run so runs
    that overlap (a sensor's run and a CLI sync) never share one. Keeps the newest few. Makes
    DuckDB's spill folder too: every pipeline dbt invocation starts here.

    It starts with the newest earlier run's partial-parse state: a fresh target folder makes dbt
    parse the whole project again (seconds on every webhook refresh); dbt checks that state
    against the files, vars and profile and parses in full when anything differs."""
    root = settings.home / "dbt"
    root.mkdir(parents=True, exist_ok=True)
    # The profile's spill folder: DuckDB creates only its last level, and a build that spills
    # with the parent missing fails ("Failed to create directory").
    settings.duckdb_temp_dir.mkdir(parents=True, exist_ok=True)
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:max(0, len(runs) - KEEP_DBT_RUNS + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run_dir = root / f"{stamp}-{label}-{uuid.uuid4().hex[:7]}"
    parsed = [p / PARTIAL_PARSE for p in runs if (p / PARTIAL_PARSE).exists()]
    if parsed:
        run_dir.mkdir()
        staged = run_dir / f".{PARTIAL_PARSE}.tmp"
        with contextlib.suppress(OSError):  # a run being removed meanwhile: dbt just parses in full
            shutil.copyfile(max(parsed, key=lambda p: p.stat().st_mtime), staged)
            os.replace(staged, run_dir / PARTIAL_PARSE)
    return run_dir


def dbt_vars(settings: Settings, *, full_tests: bool = False) -> list[str]:
    """`--vars` for every dbt invocation the pipeline makes: where the warehouse is (the
    profile, dbt_project/profiles.yml, reads it from these vars, so a run's settings reach dbt
    as arguments, not through this process's environment) and data tests on what changed
    unless `full_tests` (dbt_project/macros/tests_scope.sql). The same vars on every
    invocation against one home also let each reuse the previous one's partial parse (dbt
    parses in full when vars differ)."""
    return ["--vars", json.dumps({**dbt_profile_vars(settings),
                                  "drift_tests_scope": "all" if full_tests else "changed"})]


def dbt_profile_vars(settings: Settings) -> dict[str, str | int]:
    """What dbt's profile reads (dbt_project/profiles.yml): the DuckDB target's file, limits
    and spill folder, or with DRIFT_WAREHOUSE_URL set, the `postgres` target and the URL's
    parts. Never the password: the profile takes it from DRIFT_WAREHOUSE_URL in the
    environment the operator set (or libpq's PGPASSWORD / ~/.pgpass), so it is on no command
    line and in no run's recorded arguments."""
    values: dict[str, str | int] = {
        "drift_target": "dev",
        "drift_home": str(settings.home),
        "drift_duckdb_memory_limit": settings.duckdb_memory_limit,
        "drift_duckdb_threads": settings.duckdb_threads,
        "drift_duckdb_temp_directory": str(settings.duckdb_temp_dir),
    }
    if settings.warehouse_on_postgres:
        url = urlsplit(settings.warehouse_url)
        query = parse_qs(url.query)
        values.update({
            "drift_target": "postgres",
            "drift_pg_host": url.hostname or "127.0.0.1",
            "drift_pg_port": url.port or 5432,
            "drift_pg_user": unquote(url.username or ""),  # none: libpq's PGUSER (the profile)
            "drift_pg_database": unquote(url.path.lstrip("/")) or "postgres",
            "drift_pg_sslmode": query.get("sslmode", ["prefer"])[0],
        })
    return values


DBT_SOURCE_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")


def _hash_project_files(digest) -> None:
    """dbt's version and every file of the dbt project that the manifest is parsed from."""
    digest.update(installed_version("dbt-core").encode())
    root = Path(dbt_project.project_dir)
    sources = [*root.glob("*.yml"), *(p for folder in DBT_SOURCE_FOLDERS for p in (root / folder).rglob("*"))]
    for path in sorted(p for p in sources if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())


def project_fingerprint() -> str:
    """What the manifest is made of, as one hash (a few milliseconds: no dbt involved)."""
    digest = hashlib.sha256()
    _hash_project_files(digest)
    return digest.hexdigest()


MANIFEST_FINGERPRINT = "drift_manifest.fingerprint"


def _manifest_fingerprint_path() -> Path:
    return Path(dbt_project.manifest_path).parent / MANIFEST_FINGERPRINT


def manifest_current() -> bool:
    """The manifest was parsed from the project's files as they are now (and by this dbt)."""
    stamp = _manifest_fingerprint_path()
    return (Path(dbt_project.manifest_path).exists() and stamp.exists()
            and stamp.read_text() == project_fingerprint())


def docs_fingerprint(settings: Settings) -> str:
    """What `dbt docs generate` turns into the published docs, as one hash: the project's
    files and dbt's version (the manifest), the target and the raw tables' columns (every
    relation's columns in the catalog follow from these). Equal fingerprints, equal docs, so a
    run whose models did not change skips regenerating them."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dbt_vars(settings)).encode())  # the target and its place
    for table in RAW_TABLES:
        digest.update(table.ddl().encode())
    _hash_project_files(digest)
    return digest.hexdigest()


def ensure_manifest() -> Path:
    """Parse the dbt project if its manifest is missing (Dagster needs it before it loads)."""
    if not dbt_project.manifest_path.exists():
        _prepare_manifest()
    return dbt_project.manifest_path


def prepare_if_dev() -> None:
    """Dagster's pattern for `dagster dev` (only there: DAGSTER_IS_DEV_CLI): the project is
    parsed again when the code loads, so edited models show up; but only when they were
    edited. dagster-dbt's own `prepare_if_dev` parses on every load, and under `dagster dev`
    every run's new process loads the code: a `dbt parse` (5-10 s) in front of every webhook
    refresh, which measured 11.5 s from process start to run start."""
    if dbt_project.preparer.using_dagster_dev() and not manifest_current():
        _prepare_manifest()


prepare_if_dev()  # elsewhere nothing runs at import


# The dbt events kept from an in-process run: a node's result, the names dagster-dbt's
# DbtCoreCliEventMessage.is_result_event checks (it keeps them inline, not as a name), and
# NodeFinished, which every node fires, failed or not.
DAGSTER_DBT_EVENTS = frozenset({"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult",
                                "NodeFinished"})


class DbtInProcessResult:
    """What an in-process dbt invocation left: success, dbt's structured events (the JSON log
    lines `dbt --log-format json` prints, as dicts) and its error messages."""

    def __init__(self, success: bool, events: list[dict], errors: list[str]):
        self.success, self.events, self.errors = success, events, errors


def run_dbt_in_process(args: list[str], target_path: Path) -> DbtInProcessResult:
    """`dbt <args>` in this process (dbt's programmatic runner), for the DuckDB target.

    A Dagster run's process has most of dbt imported already (dagster-dbt imports it), so this
    saves the 2-3 s a new dbt process spends starting Python and importing dbt: the most of the
    webhook refresh's fixed cost. dbt-duckdb keeps its database open in the process after an
    invocation (a class-level environment); it is closed here, so the warehouse file is free
    for the publish that follows and for other processes. Every event dbt fires reaches the
    callback whatever the log level, as the JSON lines dagster-dbt reads from a dbt process.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    events: list[dict] = []

    def keep(message) -> None:
        # Only what dagster-dbt turns into Dagster events (a node's result) and the errors: a
        # build fires thousands of debug events, each costly to convert.
        if message.info.name in DAGSTER_DBT_EVENTS or message.info.level == "error":
            events.append(msg_to_dict(message))

    project = str(dbt_project.project_dir)
    try:
        result = dbtRunner(callbacks=[keep]).invoke(
            [*args, "--no-use-colors", "--project-dir", project, "--profiles-dir", str(dbt_project.profiles_dir),
             "--target-path", str(target_path), "--log-path", str(target_path)])
    finally:
        DuckDBConnectionManager.close_all_connections()
    errors = [event["info"]["msg"] for event in events if event["info"].get("level") == "error"]
    if result.exception is not None:
        errors.append(f"{type(result.exception).__name__}: {result.exception}")
    return DbtInProcessResult(bool(result.success), events, errors)
