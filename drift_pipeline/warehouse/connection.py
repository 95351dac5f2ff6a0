"""Opening the warehouse: one place, with DuckDB's memory and thread limits and the raw schema.

DuckDB allows one writer process per file (the pipeline); every connection it opens goes
through here so the limits from the settings (`DRIFT_DUCKDB_MEMORY_LIMIT`,
`DRIFT_DUCKDB_THREADS`) always apply and heavy queries spill under `$DRIFT_PIPELINE_HOME/tmp/`.
With `DRIFT_WAREHOUSE_URL` set, `open_warehouse` is a PostgreSQL session instead.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import duckdb

from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.postgres import build_lock, connect_postgres
from drift_pipeline.warehouse.schema import create_raw_schema


def connect(settings: Settings, database: Path | str | None = None, *, read_only: bool = False):
    """A DuckDB connection to `database` (the warehouse by default) with the configured limits."""
    settings.duckdb_temp_dir.mkdir(parents=True, exist_ok=True)
    path = str(database if database is not None else settings.warehouse_path)
    return duckdb.connect(path, read_only=read_only, config=settings.duckdb_config())


@contextmanager
def open_warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse for writing, with the raw schema in place; closed on exit."""
    settings.ensure_dirs()
    # connect_postgres creates the raw schema itself, under a lock parallel runs share.
    conn = connect_postgres(settings.warehouse_url) if settings.warehouse_on_postgres else connect(settings)
    try:
        if not settings.warehouse_on_postgres:
            create_raw_schema(conn)
        yield conn
    finally:
        conn.close()


def exclusive_build(settings: Settings):
    """Held around a dbt build and its publish. On Postgres, runs go in parallel, so builds wait
    for each other here; DuckDB's file lock already lets only one writer in."""
    return build_lock(settings.warehouse_url) if settings.warehouse_on_postgres else nullcontext()
