"""Bulk upserts into the warehouse: Arrow in, one MERGE per table, never row by row (on
PostgreSQL: COPY into a staging table and INSERT ... ON CONFLICT, see warehouse/postgres.py)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa

from drift_pipeline.warehouse.postgres import PostgresConnection
from drift_pipeline.warehouse.schema import Table

_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
    "BIGINT[]": pa.list_(pa.int64()),
    "VARCHAR[]": pa.list_(pa.string()),
}


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema matching a raw table's SQL columns."""
    return pa.schema(
        [pa.field(name, _ARROW_TYPES[sql_type.replace(" NOT NULL", "")]) for name, sql_type in table.columns]
    )


def to_arrow(table: Table, rows: list[dict]) -> pa.Table:
    """Rows (dicts keyed by column name; missing keys are null) as an Arrow table of `table`'s schema."""
    schema = arrow_schema(table)
    return pa.Table.from_pydict(
        {name: [row.get(name) for row in rows] for name in schema.names}, schema=schema
    )


@contextmanager
def transaction(conn) -> Iterator[None]:
    """One transaction: everything inside lands together or not at all."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def upsert(conn, table: Table, data: pa.Table | list[dict]) -> int:
    """Merge `data` into `table` on its key; the last row of a key within the batch wins.

    Overlapping windows and retries hand the same rows in again: a MERGE on the key makes that a
    no-op in content, so no key is ever duplicated. Returns the number of rows merged.
    """
    if isinstance(data, list):
        data = to_arrow(table, data)
    if data.num_rows == 0:
        return 0
    if isinstance(conn, PostgresConnection):
        return conn.upsert(table, data)
    data = data.append_column("_batch_order", pa.array(range(data.num_rows), pa.int64()))
    view = f"_upsert_{table.name.replace('.', '_')}"
    conn.register(view, data)
    try:
        columns = table.column_names
        keys = ", ".join(table.key)
        on = " AND ".join(f"target.{k} = source.{k}" for k in table.key)
        updates = ", ".join(f"{c} = source.{c}" for c in columns if c not in table.key)
        conn.execute(
            f"""
            MERGE INTO {table.name} AS target
            USING (
                SELECT {", ".join(columns)} FROM {view}
                QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _batch_order DESC) = 1
            ) AS source
            ON ({on})
            WHEN MATCHED THEN UPDATE SET {updates}
            WHEN NOT MATCHED THEN INSERT ({", ".join(columns)})
                VALUES ({", ".join("source." + c for c in columns)})
            """
        ).fetchall()
    finally:
        conn.unregister(view)
    return data.num_rows
