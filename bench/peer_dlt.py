"""One dlt run against a Drift API (the bundled simulator), for `bench/peers.py`.

Runs inside dlt's own virtualenv, never ours (dlt's pins conflict with the project's):

    <venv>/bin/python bench/peer_dlt.py --base-url URL --token T --initial-value MS \
        --pipelines-dir DIR --duckdb FILE --out RESULT.json

The source is a `rest_api` config written the way dlt's docs recommend for a cursor-paged API:
the list follows `links.next` (json_link), is `incremental` on `updatedAt` with a one-hour lag
and `row_order="desc"` (so dlt stops paging once it passes its stored cursor), every resource
merges on `id`; the conversation detail (participants, tags) and messages (cursor paginator on
`pagination.next`) are child resources of conversations, contacts a child by `contactId`, users
a single page.
Pipeline state lives in `--pipelines-dir`, so a second run is dlt's incremental re-sync.
Writes what it loaded (ids and row counts per table) to `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import dlt
from dlt.sources.rest_api import rest_api_source

LAG_MS = 3_600_000  # one hour: `updatedAt` is epoch milliseconds, so dlt's lag is in those units
DATASET = "drift_data"  # must differ from the DuckDB file's catalog name ("Ambiguous reference" otherwise)


def source_config(base_url: str, token: str, initial_value: int) -> dict:
    """The `rest_api` config: what a dlt user would write for Drift's conversations API."""
    return {
        "client": {
            "base_url": base_url,
            "auth": {"type": "bearer", "token": token},
            "paginator": {"type": "json_link", "next_url_path": "links.next"},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {
                "name": "conversations",
                "endpoint": {
                    "path": "conversations/list",
                    "params": {"limit": 100},
                    "data_selector": "data",
                    "incremental": {"cursor_path": "updatedAt", "initial_value": initial_value,
                                    "lag": LAG_MS, "row_order": "desc"},
                },
            },
            {
                # The list has no participants, tags or playbook: a dlt user who wants them adds
                # the detail as a child resource, as our pipeline fetches it.
                "name": "conversation_details",
                "endpoint": {
                    "path": "conversations/{resources.conversations.id}",
                    "data_selector": "data",
                    "paginator": "single_page",
                },
            },
            {
                "name": "messages",
                "endpoint": {
                    "path": "conversations/{resources.conversations.id}/messages",
                    "data_selector": "data.messages",
                    "paginator": {"type": "cursor", "cursor_path": "pagination.next", "cursor_param": "next"},
                },
            },
            {
                "name": "contacts",
                "endpoint": {
                    "path": "contacts/{resources.conversations.contactId}",
                    "data_selector": "data",
                    "paginator": "single_page",
                },
            },
            {
                "name": "users",
                "endpoint": {"path": "users/list", "data_selector": "data", "paginator": "single_page"},
            },
        ],
    }


def loaded(duckdb_file: Path) -> dict:
    """What dlt holds: each conversation's `updatedAt` by id, message ids, rows of every table."""
    import duckdb

    conn = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
            "AND table_name NOT LIKE '_dlt%'", [DATASET]).fetchall()]
        rows = {t: conn.execute(f'SELECT count(*) FROM {DATASET}."{t}"').fetchall()[0][0] for t in tables}

        def column(table: str, sql: str) -> list:
            return conn.execute(f"SELECT {sql} FROM {DATASET}.{table}").fetchall() if table in tables else []

        return {"rows": rows,
                "conversations": {str(cid): updated for cid, updated in column("conversations", "id, updated_at")},
                "message_ids": [r[0] for r in column("messages", "id")]}
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--initial-value", type=int, required=True, help="window start, epoch ms")
    parser.add_argument("--pipelines-dir", type=Path, required=True)
    parser.add_argument("--duckdb", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pipeline = dlt.pipeline(pipeline_name="drift_peers", pipelines_dir=str(args.pipelines_dir),
                            destination=dlt.destinations.duckdb(str(args.duckdb)), dataset_name=DATASET)
    info = pipeline.run(rest_api_source(source_config(args.base_url, args.token, args.initial_value)))
    info.raise_on_failed_jobs()
    args.out.write_text(json.dumps(loaded(args.duckdb)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
