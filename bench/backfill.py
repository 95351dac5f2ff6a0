"""Backfill benchmark: the Dagster overhead of a multi-year backfill through `drift-pipeline sync`.

    .venv/bin/python bench/backfill.py [--years 3] [--conversations-per-day 2] [--baseline-days 1]

Starts a demo-sized simulator whose history spans the range, then runs the real command
(`drift-pipeline sync --start ... --end ...`, a subprocess, one Dagster run) twice in fresh
homes: once over `--baseline-days` (the fixed cost of any run: process start, definitions,
dbt) and once over the whole range. For each it reads the run's event log and `raw.exports` and
splits the wall time into ingestion (API calls and loads, as the sync job measured it), dbt's
own run time (run_results.json) and the rest (Dagster: startup, steps, one materialization
event per asset per partition, checks). The overhead per 1,000 partitions is the rest's growth
between the two runs. Every figure is measured in this run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drift_simulator import Simulator, SimulatorConfig, SimulatorServer  # noqa: E402

CLI = str(Path(sys.executable).parent / "drift-pipeline")
DBT_RUN_RESULTS = Path(__file__).resolve().parent.parent / "dbt_project" / "target" / "run_results.json"


def _dbt_elapsed(home: Path) -> float:
    """dbt's own wall time for the run's `dbt build` (dagster-dbt keeps run_results.json in a
    per-invocation target folder; the newest one is this run's)."""
    candidates = sorted(Path(__file__).resolve().parent.parent.glob("dbt_project/target/**/run_results.json"),
                        key=lambda p: p.stat().st_mtime)
    candidates += sorted(home.glob("**/run_results.json"), key=lambda p: p.stat().st_mtime)
    newest = max(candidates, key=lambda p: p.stat().st_mtime, default=None)
    if newest is None:
        return 0.0
    return float(json.loads(newest.read_text()).get("elapsed_time") or 0.0)


def _run_events(dagster_home: Path) -> dict:
    """Step timings and event counts of the (only) run in this Dagster home."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 1, f"expected one run, found {len(runs)}"
        run = runs[0]
        records = instance.all_logs(run.run_id)
    kinds = Counter(r.dagster_event.event_type_value for r in records if r.dagster_event)
    steps: dict[str, dict[str, float]] = {}
    materializations: dict[str, list[float]] = {}
    for record in records:
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        step = steps.setdefault(event.step_key, {})
        if event.event_type == DagsterEventType.STEP_START:
            step["start"] = record.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            step["end"] = record.timestamp
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materializations.setdefault(event.step_key, []).append(record.timestamp)
    tags_chars = len(json.dumps(run.tags))
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "events": sum(kinds.values()),
        "materializations": kinds.get("ASSET_MATERIALIZATION", 0),
        "check_evaluations": kinds.get("ASSET_CHECK_EVALUATION", 0),
        "steps": {k: v.get("end", 0) - v.get("start", 0) for k, v in steps.items()},
        # The span over which each step wrote its materialization events.
        "materializing": {k: max(v) - min(v) for k, v in materializations.items()},
        "run_tags_chars": tags_chars,
    }


def _ingestion(home: Path) -> dict:
    conn = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        (seconds, jobs, calls, fetched, labels), = conn.execute(
            "SELECT sum(epoch(finished_at) - epoch(started_at)), count(*), sum(api_calls), "
            "sum(conversations_fetched), string_agg(partition_keys, ', ') FROM raw.exports").fetchall()
        days = conn.execute("SELECT count(*) FROM marts.agg_daily_metrics").fetchall()[0][0]
    finally:
        conn.close()
    return {"seconds": seconds or 0.0, "jobs": jobs, "api_calls": calls, "conversations": fetched,
            "partition_keys": labels, "mart_days": days}


def run_sync(base_env: dict, home: Path, start, end) -> dict:
    """`drift-pipeline sync` over [start, end) in a fresh home; its timings."""
    env = dict(base_env, DRIFT_PIPELINE_HOME=str(home))
    env.pop("DAGSTER_HOME", None)
    started = time.monotonic()
    proc = subprocess.run([CLI, "sync", "--start", start.isoformat(), "--end", end.isoformat()],
                          env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"sync failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    result = {"wall": wall, "partitions": (end - start).days, "dbt": _dbt_elapsed(home),
              **_run_events(home / "dagster")}
    result["ingestion"] = _ingestion(home)
    result["dagster"] = wall - result["ingestion"]["seconds"] - result["dbt"]
    runs_dir = home / "dagster" / "history" / "runs"
    result["event_log_mb"] = sum(p.stat().st_size for p in runs_dir.glob("*.db")) / 1e6  # run + index files
    return result


def _report(name: str, r: dict) -> None:
    ing = r["ingestion"]
    print(f"{name}: {r['partitions']} partitions in one run ({r['status']}), wall {r['wall']:.1f} s")
    print(f"  ingestion (API + loads): {ing['seconds']:.1f} s, {ing['api_calls']} API calls, "
          f"{ing['conversations']} conversations, {ing['jobs']} sync job(s), partition_keys {ing['partition_keys']!r}")
    print(f"  dbt's own build time: {r['dbt']:.1f} s; marts days: {ing['mart_days']}")
    print(f"  Dagster (the rest: startup, steps, events): {r['dagster']:.1f} s; "
          f"overhead on top of the API time (Dagster + dbt): {r['wall'] - ing['seconds']:.1f} s")
    print(f"  events: {r['events']} ({r['materializations']} materializations, "
          f"{r['check_evaluations']} check evaluations); run tags {r['run_tags_chars']} chars"
          + f"; event log (run + index files) {r['event_log_mb']:.1f} MB")
    for step, seconds in sorted(r["steps"].items()):
        writing = r["materializing"].get(step)
        print(f"  step {step}: {seconds:.1f} s" + (f" (materialization events over {writing:.1f} s)"
                                                     if writing is not None else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--conversations-per-day", type=int, default=2)
    parser.add_argument("--baseline-days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    today = now.date()
    days = round(args.years * 365)
    start, end = today - timedelta(days=days - 1), today + timedelta(days=1)  # today's partition included
    simulator = Simulator(SimulatorConfig(seed=args.seed, days=days, conversations_per_day=args.conversations_per_day,
                                          end=now, rate_limit_per_minute=0))
    with SimulatorServer(simulator) as server, tempfile.TemporaryDirectory() as tmp:
        base_env = dict(os.environ, DRIFT_API_BASE_URL=server.base_url,
                        DRIFT_ACCESS_TOKEN=simulator.config.static_access_token,
                        DRIFT_HISTORY_START=start.isoformat(), DRIFT_PII_SALT="bench")
        for name in ("DRIFT_CLIENT_ID", "DRIFT_CLIENT_SECRET", "DRIFT_REFRESH_TOKEN"):
            base_env.pop(name, None)
        baseline = run_sync(base_env, Path(tmp) / "baseline", end - timedelta(days=args.baseline_days), end)
        _report("baseline", baseline)
        backfill = run_sync(base_env, Path(tmp) / "backfill", start, end)
        _report("backfill", backfill)
    partitions = backfill["partitions"]
    grown = backfill["dagster"] - baseline["dagster"]
    marginal = grown / (partitions - baseline["partitions"]) * 1000
    overhead = backfill["wall"] - backfill["ingestion"]["seconds"]
    events = sum(backfill["materializing"].values())
    print(f"summary: {partitions} daily partitions ({args.years:g} years, {args.conversations_per_day}/day) "
          f"in one run: {backfill['wall']:.1f} s wall, {backfill['ingestion']['seconds']:.1f} s ingestion, "
          f"{overhead:.1f} s on top of it (dbt {backfill['dbt']:.1f} s, Dagster {backfill['dagster']:.1f} s)")
    print(f"  Dagster overhead per 1,000 partitions: {backfill['dagster'] / partitions * 1000:.1f} s "
          f"(all of it, fixed costs included); materialization events {events / partitions * 1000:.1f} s "
          f"({backfill['materializations']} events over {events:.1f} s); growth over a "
          f"{baseline['partitions']}-day run ({baseline['dagster']:.1f} s): {marginal:.1f} s "
          f"(noisy on a shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
