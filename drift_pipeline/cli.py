"""`drift-pipeline`: the operator's command line. Errors are one line and an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from drift_pipeline.settings import Settings, SettingsError, UsageError
from drift_pipeline.transcripts.export import DEFAULT_CHUNK_SIZE, STATUSES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


# Each command imports what it runs when it runs: loading Dagster and dbt takes seconds, and
# `--help` or a usage error should not wait for them. (The module graph has no cycles; the test
# tests/test_module_graph.py reads these imports too.)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="drift-pipeline", description="Drift chat data into a trusted DuckDB warehouse.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("sync", help="ingest the daily partitions in [start, end) and build the marts, in one Dagster run")
    p.add_argument("--start", type=_day, help="first UTC day, not before DRIFT_HISTORY_START (default: yesterday)")
    p.add_argument("--end", type=_day, help="day after the last one, at most tomorrow (default: tomorrow)")
    p.add_argument("--no-dbt", action="store_true", help="skip dbt (raw tables only)")
    p.add_argument("--full-window", action="store_true",
                   help="walk the whole window's conversation list (default: stop where the last "
                        "successful sync left the warehouse exact, minus the overlap)")
    p.add_argument("--org", type=int, metavar="ORG_ID",
                   help="sync only this Drift org (default: every org in the token store)")
    p.add_argument("--full-refresh", action="store_true",
                   help="rebuild every dbt model from the raw tables (after changing model SQL or hard deletes)")
    p.add_argument("--full-tests", action="store_true",
                   help="run every data test on every row (default: only the conversations this run rebuilt)")

    p = sub.add_parser("webhooks", help="the webhook receiver")
    wsub = p.add_subparsers(dest="webhooks_command", parser_class=_Parser, metavar="ACTION")
    wsub.required = True
    serve = wsub.add_parser("serve", help="receive Drift's POSTs on /webhooks (GET /healthz for readiness)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787)")

    sub.add_parser("apply-inbox", help="apply dropped webhook files once, refresh the marts, republish")

    p = sub.add_parser("replay", help="re-fetch conversations or re-apply a stored webhook payload (idempotent)")
    rsub = p.add_subparsers(dest="replay_command", parser_class=_Parser, metavar="WHAT")
    rsub.required = True
    rc = rsub.add_parser("conversation", help="re-fetch and upsert conversations by id")
    rc.add_argument("ids", nargs="+", type=int, metavar="ID", help="Drift conversation ids")
    rc.add_argument("--org", type=int, metavar="ORG_ID", help="the conversations' Drift org (required when several are connected)")
    re_ = rsub.add_parser("event", help="re-apply one stored webhook file")
    re_.add_argument("file", type=Path, metavar="FILE", help="a stored webhook file (inbox/, processed/ or quarantine/)")

    sub.add_parser("publish", help="write the serving copy (serving/analytics.duckdb and Parquet)")

    p = sub.add_parser("erase", help="GDPR erasure of a contact from the warehouse, files and serving copy")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--contact-id", type=int, help="the Drift contact (end user) id to erase")
    group.add_argument("--email", help="erase the contacts with this email address")
    p.add_argument("--org", type=int, metavar="ORG_ID",
                   help="only in this Drift org (required with --contact-id when the warehouse holds several)")

    p = sub.add_parser("export", help="export data out of the warehouse")
    esub = p.add_subparsers(dest="export_command", parser_class=_Parser, metavar="WHAT")
    esub.required = True
    et = esub.add_parser("transcripts", help="conversation transcripts as JSONL (incremental, resumable)")
    et.add_argument("--since", type=_day, required=True, help="first UTC day of creation")
    et.add_argument("--until", type=_day, help="day after the last one (exclusive, like sync --end)")
    et.add_argument("--status", choices=STATUSES, help="only conversations with this status now")
    et.add_argument("--include-notes", action="store_true", help="include agents' private notes")
    et.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the JSONL files")
    et.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                    help=f"conversations per file and checkpoint (default {DEFAULT_CHUNK_SIZE})")

    p = sub.add_parser("retention", help="blank message bodies and transcripts older than N days (metrics stay)")
    p.add_argument("--days", type=_positive_int, required=True, metavar="N", help="days of message text to keep")

    p = sub.add_parser("auth", help="the OAuth token store")
    asub = p.add_subparsers(dest="auth_command", parser_class=_Parser, metavar="ACTION")
    asub.required = True
    ex = asub.add_parser("exchange", help="exchange an authorization code for tokens (stored encrypted)")
    ex.add_argument("--code", required=True, help="the authorization code from the app install's redirect")
    asub.add_parser("refresh", help="refresh the access token now (rotates the refresh token)")
    asub.add_parser("status", help="what the store holds (never the tokens)")

    p = sub.add_parser("simulator", help="the bundled Drift simulator")
    ssub = p.add_subparsers(dest="simulator_command", parser_class=_Parser, metavar="ACTION")
    ssub.required = True
    sserve = ssub.add_parser("serve", help="serve a seeded fake Drift API on loopback")
    sserve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sserve.add_argument("--port", type=int, default=8700, help="port to listen on (default 8700)")
    sserve.add_argument("--seed", type=int, default=7, help="seed of the simulated workspace (default 7)")
    sserve.add_argument("--days", type=int, default=14, help="days of history ending now (default 14)")
    sserve.add_argument("--conversations-per-day", type=int, default=300, help="default 300")
    sserve.add_argument("--rate-limit", type=int, default=600, help="requests per minute")
    return parser


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_sync(args, settings: Settings) -> int:
    from drift_pipeline.runner import materialize_days

    today = datetime.now(timezone.utc).date()
    # Defaults: yesterday and today (never before the first partition); an explicit range
    # outside [DRIFT_HISTORY_START, tomorrow) is a usage error raised before Dagster starts.
    start = args.start or max(today - timedelta(days=1), settings.history_start)
    end = args.end or today + timedelta(days=1)
    result = materialize_days(settings, start, end, with_dbt=not args.no_dbt, full_window=args.full_window,
                              org_id=args.org, full_refresh=args.full_refresh, full_tests=args.full_tests,
                              log_level="INFO" if args.verbose else "CRITICAL")
    if args.no_dbt:
        print(f"synced [{start}, {end}) in run {result.run_id} (dbt skipped)")
    else:
        print(f"synced [{start}, {end}), built the marts and published the serving copy in run {result.run_id}")
    for line in check_summary(result.get_asset_check_evaluations()):
        print(line)
    return 0


def check_summary(evaluations) -> list[str]:
    """What a sync's checks found, for the terminal: how many passed, which warned, and how the
    marts compare with Drift's own reports (the UI has the details)."""
    from drift_pipeline.assets.drift_reports import CHECK_NAME
    from drift_pipeline.reconcile import summary_lines

    if not evaluations:
        return []
    warned = sorted(f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed)
    lines = [f"checks: {len(evaluations) - len(warned)} of {len(evaluations)} passed"
             + (f"; not passed: {', '.join(warned)}" if warned else "")]
    for evaluation in evaluations:
        if evaluation.check_name == CHECK_NAME and "agreement" in evaluation.metadata:
            lines.append("the marts against Drift's own reports (conversations of the synced window):")
            lines += [f"  {line}" for line in summary_lines(evaluation.metadata["agreement"].value,
                                                           evaluation.metadata["reasons"].value)]
    return lines


def cmd_publish(args, settings: Settings) -> int:
    from drift_pipeline.report.page import REPORT_FILENAME
    from drift_pipeline.runner import publish_serving
    from drift_pipeline.serving import SERVING_DB, serving_table_counts

    result = publish_serving(settings, log_level="INFO" if args.verbose else "CRITICAL")
    tables = serving_table_counts(settings)
    print(f"published {settings.serving_dir / SERVING_DB} in run {result.run_id}: "
          + ", ".join(f"{k} {v} rows" for k, v in tables.items()))
    print(f"report: {settings.serving_dir / REPORT_FILENAME}")
    return 0


def cmd_auth(args, settings: Settings) -> int:
    from drift_pipeline.drift import auth_status, authorize

    if args.auth_command == "exchange":
        _print_json(authorize.auth_exchange(settings, args.code))
    elif args.auth_command == "refresh":
        _print_json(authorize.auth_refresh(settings))
    else:
        _print_json(auth_status.auth_status(settings))
    return 0


def cmd_simulator(args, settings: Settings) -> int:
    try:
        from drift_simulator import serve
    except ModuleNotFoundError:
        # Its own distribution, not a dependency of the pipeline's: a deployment needs no simulator.
        raise UsageError("the Drift simulator is not installed: `pip install -e ./drift_simulator` from the "
                         "repository (make install does)") from None

    serve(host=args.host, port=args.port, seed=args.seed, days=args.days,
          conversations_per_day=args.conversations_per_day, rate_limit_per_minute=args.rate_limit)
    return 0


def cmd_webhooks(args, settings: Settings) -> int:
    from drift_pipeline.webhooks.receiver import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def cmd_apply_inbox(args, settings: Settings) -> int:
    from drift_pipeline.runner import apply_inbox_and_refresh

    _print_json(apply_inbox_and_refresh(settings))
    return 0


def cmd_replay(args, settings: Settings) -> int:
    from drift_pipeline import operations
    from drift_pipeline.runner import refresh_marts

    if args.replay_command == "conversation":
        _print_json(operations.replay_conversations(settings, args.ids, org_id=args.org, refresh=refresh_marts))
    else:
        _print_json(operations.replay_event_file(settings, args.file, refresh=refresh_marts))
    return 0


def cmd_erase(args, settings: Settings) -> int:
    from drift_pipeline.operations import erase
    from drift_pipeline.runner import refresh_marts

    _print_json(erase(settings, contact_id=args.contact_id, email=args.email, org_id=args.org,
                      refresh=refresh_marts))
    return 0


# Test hook: seconds to sleep between export chunks, so a test can SIGKILL a job mid-way.
EXPORT_PAUSE_ENV = "DRIFT_EXPORT_PAUSE_SECONDS"


def cmd_export(args, settings: Settings) -> int:
    from drift_pipeline.transcripts.export import ExportFilters, export_transcripts

    try:
        pause = float(os.environ.get(EXPORT_PAUSE_ENV) or 0)
    except ValueError:
        raise UsageError(f"{EXPORT_PAUSE_ENV} must be a number of seconds") from None
    filters = ExportFilters(since=args.since, until=args.until, status=args.status,
                            include_notes=args.include_notes)
    result = export_transcripts(settings, filters, args.out, chunk_size=args.chunk_size, pause_seconds=pause)
    how = "resumed job" if result["resumed"] else "job"
    print(f"{how} {result['job_id']}: wrote {result['conversations_written']} conversation(s) "
          f"in {len(result['files_written'])} file(s) to {result['out']}")
    return 0


def cmd_retention(args, settings: Settings) -> int:
    from drift_pipeline.retention import run_retention

    _print_json(run_retention(settings, args.days, trigger="cli"))
    return 0


# The commands that start Dagster runs (runner.py) in this process.
DAGSTER_COMMANDS = frozenset({"sync", "apply-inbox", "replay", "erase", "publish"})

COMMANDS = {
    "sync": cmd_sync,
    "publish": cmd_publish,
    "auth": cmd_auth,
    "simulator": cmd_simulator,
    "webhooks": cmd_webhooks,
    "apply-inbox": cmd_apply_inbox,
    "replay": cmd_replay,
    "erase": cmd_erase,
    "export": cmd_export,
    "retention": cmd_retention,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # dagster's loggers set their own INFO level
        handler.setLevel(level)
    try:
        settings = Settings.from_env()
        if args.command in DAGSTER_COMMANDS:
            from drift_pipeline.instance import dagster_environment  # imports Dagster (seconds)

            # The process's edge: what Dagster itself reads from the environment (its home,
            # its Postgres storage, two switches), set once here for the runs this command
            # starts. The one place the pipeline writes its environment.
            os.environ.update(dagster_environment(settings))
        return COMMANDS[args.command](args, settings)
    except (UsageError, SettingsError) as exc:
        print(f"drift-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the operator; details are in the logs / Dagster run
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"drift-pipeline {args.command}: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
