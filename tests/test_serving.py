"""The serving copy: an analyst's open session never blocks the pipeline, nor is blocked by it;
the README's example queries answer on it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from conftest import SIM_END, run_days

pytestmark = pytest.mark.slow
END = SIM_END.replace(tzinfo=None)
README = Path(__file__).resolve().parent.parent / "README.md"

READER = r"""
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
answers = 0
while sys.stdin.readline().strip() == "query":
    answers += 1
    print(conn.execute("SELECT sum(conversations) FROM marts.agg_daily_metrics").fetchall()[0][0], flush=True)
"""


def readme_sql() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)


def test_a_reader_holding_the_serving_copy_open_blocks_neither_sync_nor_publish(sim_env):
    simulator, settings = sim_env
    run_days(settings, (END - timedelta(days=3)).date(), (END - timedelta(days=1)).date())
    serving = settings.serving_dir / "analytics.duckdb"

    reader = subprocess.Popen([sys.executable, "-c", READER, str(serving)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        reader.stdin.write("query\n"); reader.stdin.flush()
        before = int(reader.stdout.readline())
        # A second sync (one more day) and its publish run while the reader holds the file open.
        assert run_days(settings, (END - timedelta(days=3)).date(), END.date()).success
        reader.stdin.write("query\n"); reader.stdin.flush()
        assert int(reader.stdout.readline()) == before, "the open session keeps its snapshot"
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert reader.returncode == 0

    conn = duckdb.connect(str(serving), read_only=True)
    try:
        after = conn.execute("SELECT sum(conversations) FROM marts.agg_daily_metrics").fetchall()[0][0]
        assert after > before, "a new session sees the republished numbers"
        for sql in readme_sql():
            assert conn.execute(sql).fetchall(), sql
        tables = {r[0] for r in conn.execute("SELECT table_schema FROM information_schema.tables").fetchall()}
        assert tables == {"marts"}, "no raw data in the serving copy"
    finally:
        conn.close()
    # The second sync changed rows, not models: the published dbt docs were kept, not rebuilt.
    docs_runs = [p.name for p in (settings.home / "dbt").iterdir() if "-docs-" in p.name]
    assert len(docs_runs) == 1, docs_runs
    assert (settings.serving_dir / "dbt-docs" / "catalog.json").exists()
    parquet = settings.serving_dir / "parquet" / "marts.agg_daily_metrics.parquet"
    assert duckdb.sql(f"SELECT sum(conversations) FROM '{parquet}'").fetchall()[0][0] == after
