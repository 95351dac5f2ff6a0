"""The serving copy: a lock-free, published snapshot of the marts for analysts and BI tools.

DuckDB lets one process write a file and blocks everyone else while it does, so analysts never
open the warehouse. `publish` builds a fresh `analytics.duckdb` and Parquet files beside the
published ones and renames them into place: a reader holding the old file keeps reading it, the
next open sees the new one, and neither side waits for the other.

The DuckDB copies are written in the storage format of `DRIFT_SERVING_STORAGE_VERSION` (default
v1.0.0), not the pinned DuckDB's own: BI tools read them with the DuckDB their driver bundles,
usually of the 1.x line, which refuses a file in a newer format.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

from drift_pipeline.fsutil import atomic_write_text, fsync_dir
from drift_pipeline.report.page import REPORT_FILENAME, write_report
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.connection import connect, open_warehouse
from drift_pipeline.warehouse.postgres import PostgresConnection, fetch_arrow
from drift_pipeline.transcripts.store import refresh_transcripts
from drift_pipeline.warehouse.load import transaction
from drift_pipeline.warehouse.transcripts import copy_for_qa_sql

SERVING_DB = "analytics.duckdb"
TRANSCRIPTS_DB = "transcripts.duckdb"  # opt-in (DRIFT_PUBLISH_TRANSCRIPTS): holds message text
TRANSCRIPTS_TABLE = "qa.conversation_transcripts"  # not schema "transcripts": the file's catalog is named so
PUBLISHED_SCHEMAS = ("marts",)
FINGERPRINTS = ".fingerprints.json"  # beside the Parquet files: what each was written from  # no raw message bodies, transcripts or raw emails in the analysts' copy


class PublishError(RuntimeError):
    pass


def _new_copy(settings: Settings, path: Path) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is a new DuckDB file at `path`, stored in the format
    of `settings.serving_storage_version` so older DuckDB releases can open it.

    The format is chosen when a file is attached (STORAGE_VERSION), so the file is attached to
    an in-memory connection rather than opened as the connection's own database."""
    conn = connect(settings, ":memory:")
    try:
        conn.execute(f"ATTACH '{path}' AS serving (STORAGE_VERSION '{settings.serving_storage_version}')")
    except duckdb.Error as error:
        conn.close()
        path.unlink(missing_ok=True)
        reason = str(error).splitlines()[0][:200]
        raise PublishError(f"DRIFT_SERVING_STORAGE_VERSION={settings.serving_storage_version} cannot be written "
                           f"by DuckDB {duckdb.__version__} ({reason}): use a version such as v1.0.0") from None
    conn.execute("USE serving")
    return conn


def published_tables(conn, catalog: str) -> list[tuple[str, str]]:
    schemas = ", ".join(f"'{s}'" for s in PUBLISHED_SCHEMAS)
    return [
        (schema, table)
        for schema, table in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            f"WHERE table_catalog = ? AND table_schema IN ({schemas}) AND table_type = 'BASE TABLE' "
            "ORDER BY 1, 2",
            [catalog],
        ).fetchall()
    ]


def table_fingerprint(conn, table: str) -> list:
    """[rows, sum of row hashes]: equal fingerprints mean (short of a hash collision) equal
    contents, whatever built the table; a scan of hashes, far cheaper than writing Parquet."""
    rows, hashed = conn.execute(f"SELECT count(*), sum(hash(t))::VARCHAR FROM {table} AS t").fetchall()[0]
    return [rows, hashed]


def _published_fingerprints(parquet_dir: Path) -> dict:
    try:
        return json.loads((parquet_dir / FINGERPRINTS).read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: every Parquet file is written


def require_warehouse(settings: Settings) -> None:
    """Raise PublishError (one line, what to run) when there is no DuckDB warehouse to publish."""
    if not settings.warehouse_on_postgres and not settings.warehouse_path.exists():
        raise PublishError(f"no warehouse at {settings.warehouse_path}: run `drift-pipeline sync` first")


def publish(settings: Settings, *, report: bool = True) -> dict:
    """Write `serving/analytics.duckdb` and `serving/parquet/<schema>.<table>.parquet` atomically.

    The DuckDB copy is always a new file (it holds no freed pages, so rows erasure removed
    cannot linger in it); a Parquet file, the larger cost at a million conversations, is
    rewritten only when its mart's fingerprint changed since the last publish.
    Returns {"tables": {name: rows}, "path": ..., "parquet_written": [...], "parquet_unchanged": [...]}.
    Must run in the pipeline's own process (the warehouse's single writer), after dbt.
    `report=False` leaves `report.html` to its own asset (assets/serving.py).
    """
    require_warehouse(settings)
    serving = settings.serving_dir
    parquet_dir = serving / "parquet"
    parquet_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging_db = serving / f".{SERVING_DB}.{token}.tmp"
    staged_parquet: list[tuple[Path, Path]] = []
    counts: dict[str, int] = {}
    previous = _published_fingerprints(parquet_dir)
    fingerprints: dict[str, list] = {}
    unchanged: list[str] = []
    conn = _new_copy(settings, staging_db)
    try:
        if settings.warehouse_on_postgres:
            tables = _copy_from_postgres(conn, settings.warehouse_url)
        else:
            conn.execute(f"ATTACH '{settings.warehouse_path}' AS warehouse (READ_ONLY)")
            tables = published_tables(conn, "warehouse")
        if not tables:
            raise PublishError("the warehouse has no marts yet: run dbt (drift-pipeline sync) first")
        for schema, table in tables:
            name = f"{schema}.{table}"
            if not settings.warehouse_on_postgres:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                conn.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM warehouse.{name}")
            fingerprints[name] = table_fingerprint(conn, name)
            counts[name] = fingerprints[name][0]
            final = parquet_dir / f"{name}.parquet"
            if previous.get(name) == fingerprints[name] and final.exists():
                unchanged.append(name)
                continue
            staged = parquet_dir / f".{name}.{token}.tmp"
            conn.execute(f"COPY {name} TO '{staged}' (FORMAT parquet)")
            staged_parquet.append((staged, final))
        if not settings.warehouse_on_postgres:
            conn.execute("DETACH warehouse")
        conn.execute("CHECKPOINT")
    except BaseException:
        conn.close()
        staging_db.unlink(missing_ok=True)
        for staged, _ in staged_parquet:
            staged.unlink(missing_ok=True)
        raise
    conn.close()
    for staged, final in staged_parquet:
        os.replace(staged, final)
    os.replace(staging_db, serving / SERVING_DB)
    Path(str(staging_db) + ".wal").unlink(missing_ok=True)
    fsync_dir(serving)
    # Written after the files it describes: a crash in between only rewrites them next time.
    atomic_write_text(parquet_dir / FINGERPRINTS, json.dumps(fingerprints, indent=1, sort_keys=True))
    fsync_dir(parquet_dir)
    # The report is drawn from what was just published, so pictures and tables always agree.
    written = write_report(settings, serving / SERVING_DB, serving / REPORT_FILENAME)["path"] if report else None
    return {"path": str(serving / SERVING_DB), "tables": counts, "report": written,
            "parquet_written": [final.name for _, final in staged_parquet], "parquet_unchanged": unchanged,
            "transcripts": publish_transcripts_copy(settings)}


def _copy_from_postgres(conn, url: str) -> list[tuple[str, str]]:
    """The published schemas' tables read from Postgres into the staging DuckDB file, as Arrow
    batches (DuckDB's postgres extension is a download this deployment may not have)."""
    schemas = ", ".join(f"'{s}'" for s in PUBLISHED_SCHEMAS)
    with PostgresConnection(url) as source:
        tables = [tuple(row) for row in source.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            f"WHERE table_schema IN ({schemas}) AND table_type = 'BASE TABLE' ORDER BY 1, 2").fetchall()]
        for schema, table in tables:
            batches = list(fetch_arrow(source, f'SELECT * FROM "{schema}"."{table}"'))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches)
            conn.register("_published", reader)
            try:
                conn.execute(f"CREATE OR REPLACE TABLE {schema}.{table} AS SELECT * FROM _published")
            finally:
                conn.unregister("_published")
    return tables


def publish_transcripts_copy(settings: Settings) -> dict:
    """Publish `serving/transcripts.duckdb` when `DRIFT_PUBLISH_TRANSCRIPTS` is on; otherwise
    make sure none is left behind (a copy nobody refreshes would escape erasure and retention).

    Refreshes `raw.transcripts` first (so it needs the warehouse's write lock, like `publish`),
    then builds the copy in a new file and renames it into place: a new file holds no freed
    pages, so text that erasure or retention removed cannot linger in it.
    """
    final = settings.serving_dir / TRANSCRIPTS_DB
    if not settings.publish_transcripts:
        removed = final.exists()
        final.unlink(missing_ok=True)
        if removed:
            fsync_dir(settings.serving_dir)
        return {"published": False, "removed_stale_copy": removed}
    if settings.warehouse_on_postgres:
        raise PublishError("DRIFT_PUBLISH_TRANSCRIPTS is not supported with a Postgres warehouse yet "
                           "(DRIFT_WAREHOUSE_URL): unset it")
    if not settings.warehouse_path.exists():
        raise PublishError(f"no warehouse at {settings.warehouse_path}: run `drift-pipeline sync` first")
    with open_warehouse(settings) as conn, transaction(conn):
        refreshed = refresh_transcripts(conn)
    settings.serving_dir.mkdir(parents=True, exist_ok=True)
    staging_db = settings.serving_dir / f".{TRANSCRIPTS_DB}.{uuid.uuid4().hex[:12]}.tmp"
    conn = _new_copy(settings, staging_db)
    try:
        conn.execute(f"ATTACH '{settings.warehouse_path}' AS warehouse (READ_ONLY)")
        conn.execute("CREATE SCHEMA qa")
        conn.execute(f"CREATE TABLE {TRANSCRIPTS_TABLE} AS {copy_for_qa_sql('warehouse')}")
        rows = conn.execute(f"SELECT count(*) FROM {TRANSCRIPTS_TABLE}").fetchall()[0][0]
        conn.execute("DETACH warehouse")
        conn.execute("CHECKPOINT")
    except BaseException:
        conn.close()
        staging_db.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(staging_db, final)
    Path(str(staging_db) + ".wal").unlink(missing_ok=True)
    fsync_dir(settings.serving_dir)
    return {"published": True, "path": str(final), "rows": rows, "transcripts_rendered": refreshed.rendered}


DBT_DOCS_DIR = "dbt-docs"
DBT_DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def publish_dbt_docs(settings: Settings, generated_dir: Path) -> Path:
    """Copy `dbt docs generate` output (index.html, manifest.json, catalog.json) from
    `generated_dir` to `serving/dbt-docs/`, each file replaced atomically.

    dbt's index.html loads the two JSON files from beside it, so the folder is browsable as is
    (served over HTTP: browsers refuse those loads from file://).
    """
    missing = [name for name in DBT_DOCS_FILES if not (generated_dir / name).exists()]
    if missing:
        raise PublishError(f"dbt docs generate left no {', '.join(missing)} in {generated_dir}")
    target = settings.serving_dir / DBT_DOCS_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in DBT_DOCS_FILES:
        staged = target / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
        shutil.copyfile(generated_dir / name, staged)
        os.replace(staged, target / name)
    fsync_dir(target)
    return target


HEADLINE_SQL = """
SELECT metric_date,
       conversations,
       round(first_response_p50_seconds / 60, 1) AS frt_p50_min,
       round(first_response_p90_seconds / 60, 1) AS frt_p90_min,
       round(100 * handoff_rate, 1) AS handoff_pct,
       round(open_to_close_p50_seconds / 3600, 2) AS open_to_close_p50_h
FROM marts.agg_daily_metrics
ORDER BY metric_date
"""


def serving_table_counts(settings: Settings) -> dict[str, int]:
    """Rows of each published table, read from the serving copy as an analyst opens it."""
    conn = connect(settings, settings.serving_dir / SERVING_DB, read_only=True)
    try:
        return {f"{schema}.{table}": conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchall()[0][0]
                for schema, table in published_tables(conn, SERVING_DB.removesuffix(".duckdb"))}
    finally:
        conn.close()


def headline_metrics(settings: Settings) -> list[tuple]:
    """The per-day headline metrics, read from the serving copy (never the warehouse)."""
    conn = connect(settings, settings.serving_dir / SERVING_DB, read_only=True)
    try:
        return conn.execute(HEADLINE_SQL).fetchall()
    finally:
        conn.close()


TOP_PLAYBOOKS_SQL = """
SELECT coalesce(max(playbook_name), 'playbook ' || playbook_id || ' (never listed)') AS playbook,
       sum(conversations) AS conversations,
       sum(meetings_booked) AS meetings_booked,
       round(100 * sum(meetings_booked)::DOUBLE / sum(conversations), 1) AS meeting_rate_pct
FROM marts.agg_playbook_daily
GROUP BY org_id, playbook_id
ORDER BY meetings_booked DESC, conversations DESC, org_id, playbook_id
LIMIT ?
"""


def top_playbooks(settings: Settings, limit: int = 5) -> list[tuple]:
    """The playbooks that booked the most meetings (conversations with a meeting still booked),
    over every day held: (playbook, conversations, meetings booked, meeting rate %), from the
    serving copy."""
    conn = connect(settings, settings.serving_dir / SERVING_DB, read_only=True)
    try:
        return conn.execute(TOP_PLAYBOOKS_SQL, [limit]).fetchall()
    finally:
        conn.close()
