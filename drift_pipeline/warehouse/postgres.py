"""The warehouse in PostgreSQL (`DRIFT_WAREHOUSE_URL=postgresql://...`), for deployments past
one DuckDB file: several writers at once, so runs for different orgs or days go in parallel.

`PostgresConnection` answers the part of DuckDB's connection interface the raw-table code uses
(`execute(sql, params)` with `?` placeholders, `fetchall`, `close`, explicit transactions), so
the sync, the schema and the loads are the same code on both engines. Raw loads COPY a batch
into a session's staging table and `INSERT ... ON CONFLICT` it on the table's key: the same
"last row of a key wins, no key twice" as the DuckDB MERGE.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import psycopg
import pyarrow as pa

from drift_pipeline.warehouse.schema import Table, create_raw_schema

# psycopg's binary COPY types for the raw tables' SQL types. VARCHAR stays `varchar`: a binary
# array carries its element type, and Postgres refuses a text[] where varchar[] is declared.
_COPY_TYPES = {
    "BIGINT": "int8",
    "INTEGER": "int4",
    "VARCHAR": "varchar",
    "BOOLEAN": "bool",
    "TIMESTAMP": "timestamp",
    "BIGINT[]": "int8[]",
    "VARCHAR[]": "varchar[]",
}

# Any constant: the advisory lock that serializes creating and migrating the raw schema, which
# two runs starting at the same moment would otherwise race on (CREATE ... IF NOT EXISTS is
# not safe against a concurrent CREATE in Postgres).
_SCHEMA_LOCK = 4_170_015

# Held by the session that builds the dbt models: parallel runs load raw rows side by side, but
# two dbt builds would replace the same tables under each other.
_BUILD_LOCK = 4_170_016

_PLACEHOLDER = re.compile(r"\?")


def _to_psycopg(sql: str) -> str:
    """DuckDB's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


class PostgresConnection:
    """One autocommit session on the warehouse database; `BEGIN`/`COMMIT` work as in DuckDB."""

    dialect = "postgres"

    def __init__(self, url: str):
        self._conn = psycopg.connect(url, autocommit=True)
        self._staged: set[str] = set()

    def execute(self, sql: str, params: Sequence | None = None) -> psycopg.Cursor:
        cursor = self._conn.cursor()
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(_to_psycopg(sql), list(params))
        return cursor

    def cursor(self) -> psycopg.Cursor:
        return self._conn.cursor()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "PostgresConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def upsert(self, table: Table, data: pa.Table) -> int:
        """COPY `data` into this session's staging table for `table`, then insert it on the key,
        updating rows whose key exists. The last row of a key within the batch wins."""
        columns = table.column_names
        latest: dict[tuple, dict] = {}
        for row in data.select(columns).to_pylist():
            latest[tuple(row[k] for k in table.key)] = row
        stage = f"_stage_{table.name.replace('.', '_')}"
        cursor = self._conn.cursor()
        if stage not in self._staged:
            # A temp table lives as long as the session; a rolled-back transaction takes it
            # away, hence IF NOT EXISTS rather than remembering it blindly.
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name})")
        cursor.execute(f"TRUNCATE {stage}")
        types = [_COPY_TYPES[sql_type.replace(" NOT NULL", "")] for _, sql_type in table.columns]
        with cursor.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in latest.values():
                copy.write_row([row[c] for c in columns])
        keys = ", ".join(table.key)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in table.key)
        # Rows go in key order, so two sessions upserting overlapping keys lock them in the same
        # order and wait for each other instead of deadlocking.
        cursor.execute(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {', '.join(columns)} FROM {stage} ORDER BY {keys} "
            f"ON CONFLICT ({keys}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"))
        return data.num_rows


def connect_postgres(url: str) -> PostgresConnection:
    """A session on the warehouse database with the raw schema in place (created or migrated
    under an advisory lock, so parallel runs do not race on it)."""
    conn = PostgresConnection(url)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(?)", [_SCHEMA_LOCK]).fetchall()
        create_raw_schema(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def build_lock(url: str) -> Iterator[None]:
    """Wait for, then hold, the warehouse's build lock (a session advisory lock) until exit."""
    with PostgresConnection(url) as conn:
        conn.execute("SELECT pg_advisory_lock(?)", [_BUILD_LOCK]).fetchall()
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", [_BUILD_LOCK]).fetchall()


def fetch_arrow(conn: PostgresConnection, sql: str, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
    """A query's rows as Arrow record batches, typed from Postgres's column types (a server-side
    cursor: a large mart never sits in memory whole)."""
    with conn._conn.transaction(), conn._conn.cursor(name="drift_fetch_arrow") as cursor:
        cursor.execute(sql)
        rows = cursor.fetchmany(batch_rows)
        fields = [pa.field(col.name, _arrow_type(col.type_code)) for col in cursor.description]
        schema = pa.schema(fields)
        # numeric (Decimal) as a double, as DuckDB has it; unknown types as their text.
        convert = [float if f.type == pa.float64() else (str if f.type == pa.string() else None)
                   for f in fields]
        while True:
            columns = list(zip(*rows)) if rows else [() for _ in fields]
            arrays = [pa.array([None if v is None else fn(v) for v in values] if fn else list(values),
                               type=f.type)
                      for values, f, fn in zip(columns, fields, convert)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
            if len(rows) < batch_rows:
                break
            rows = cursor.fetchmany(batch_rows)


# Postgres type oids the marts use, as Arrow types (anything else is read as text).
_ARROW_BY_OID = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),  # numeric: round()/avg() results, doubles in DuckDB
    25: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1016: pa.list_(pa.int64()),
    1015: pa.list_(pa.string()),
    1009: pa.list_(pa.string()),
}


def _arrow_type(oid: int) -> pa.DataType:
    return _ARROW_BY_OID.get(oid, pa.string())
