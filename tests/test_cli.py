"""The command line: every subcommand has --help; bad usage is exit 2 with one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from drift_pipeline.assets.dbt import DbtModelsConfig, dbt_command
from drift_pipeline.cli import build_parser, main
from drift_pipeline.settings import Settings

CLI = str(Path(sys.executable).parent / "drift-pipeline")

SUBCOMMANDS = [
    ["sync"], ["webhooks", "serve"], ["apply-inbox"], ["replay", "conversation"], ["replay", "event"],
    ["publish"], ["erase"], ["auth", "exchange"], ["auth", "refresh"], ["auth", "status"], ["simulator", "serve"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w))
def test_every_subcommand_has_help(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: drift-pipeline" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    [], ["nope"], ["sync", "--start", "2026-13-01"], ["sync", "--start", "yesterday"],
    ["replay", "conversation", "abc"], ["erase"], ["erase", "--contact-id", "1", "--email", "a@b.c"],
    ["auth", "exchange"], ["simulator", "serve", "--port", "x"],
])
def test_bad_usage_exits_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err


def test_sync_with_end_before_start_is_a_usage_error(home, capsys):
    assert main(["sync", "--start", "2026-11-10", "--end", "2026-11-09"]) == 2
    assert "must be after" in capsys.readouterr().err


def test_sync_full_refresh_or_full_tests_without_dbt_is_a_usage_error(home, capsys):
    assert main(["sync", "--no-dbt", "--full-tests"]) == 2
    err = capsys.readouterr().err
    assert "--full-tests apply to dbt" in err and len(err.strip().splitlines()) == 1


def test_sync_flags_become_the_dbt_assets_run_config():
    """Scheduled runs test what changed; --full-tests tests every row; --full-refresh implies it."""
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": "/srv/drift"})

    def dbt_vars_of(config: DbtModelsConfig) -> dict:
        command = dbt_command(config, settings)
        assert command[-2] == "--vars"
        return json.loads(command[-1])

    assert dbt_vars_of(DbtModelsConfig())["drift_tests_scope"] == "changed"
    assert dbt_vars_of(DbtModelsConfig(full_tests=True))["drift_tests_scope"] == "all"
    assert dbt_command(DbtModelsConfig(data_tests=False), settings)[0] == "run", "the webhook job's refresh"
    assert "--full-refresh" in dbt_command(DbtModelsConfig(full_refresh=True), settings)
    assert dbt_vars_of(DbtModelsConfig(full_refresh=True))["drift_tests_scope"] == "all"
    # The profile's place comes with the command, not through the process's environment.
    assert dbt_vars_of(DbtModelsConfig()) == {
        "drift_target": "dev", "drift_home": "/srv/drift", "drift_duckdb_memory_limit": "2GB",
        "drift_duckdb_threads": 2, "drift_duckdb_temp_directory": "/srv/drift/tmp/duckdb",
        "drift_tests_scope": "changed"}
    args = build_parser().parse_args(["sync", "--full-refresh", "--full-tests"])
    assert args.full_refresh and args.full_tests


def test_a_postgres_warehouse_reaches_dbt_as_vars_without_its_password():
    """The URL's parts travel as dbt vars (on dbt's command line, in its run results); the
    password never does: the profile reads it from the operator's DRIFT_WAREHOUSE_URL."""
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": "/srv/drift",
                                  "DRIFT_WAREHOUSE_URL": "postgresql://ana:s%40cret@db.internal:6543/marts?sslmode=require"})
    command = dbt_command(DbtModelsConfig(), settings)
    passed = json.loads(command[-1])
    assert {k: v for k, v in passed.items() if k.startswith("drift_pg") or k == "drift_target"} == {
        "drift_target": "postgres", "drift_pg_host": "db.internal", "drift_pg_port": 6543,
        "drift_pg_user": "ana", "drift_pg_database": "marts", "drift_pg_sslmode": "require"}
    assert "cret" not in " ".join(command)



def test_sync_before_history_start_is_a_one_line_usage_error_naming_the_variable(home, monkeypatch):
    monkeypatch.setenv("DRIFT_HISTORY_START", "2020-01-01")
    proc = subprocess.run([CLI, "sync", "--start", "2019-12-31", "--end", "2020-01-02"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "DRIFT_HISTORY_START" in proc.stderr and "2020-01-01" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not home.exists()  # refused before anything ran or was created


def test_sync_with_end_after_tomorrow_is_a_usage_error(home, capsys):
    end = date.today() + timedelta(days=3)
    assert main(["sync", "--start", "2026-11-10", "--end", end.isoformat()]) == 2
    err = capsys.readouterr().err.strip()
    assert "after tomorrow" in err and "\n" not in err


def test_a_bad_history_start_is_one_line_and_exit_2(home, monkeypatch, capsys):
    monkeypatch.setenv("DRIFT_HISTORY_START", "2024-02-30")
    assert main(["sync"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("drift-pipeline sync: DRIFT_HISTORY_START") and "\n" not in err


def test_webhook_receiver_refuses_to_start_without_its_token(home):
    proc = subprocess.run([CLI, "webhooks", "serve", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "DRIFT_WEBHOOK_TOKEN" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_publish_without_a_warehouse_says_what_to_do(home):
    proc = subprocess.run([CLI, "publish"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "drift-pipeline sync" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_auth_status_without_credentials_shows_no_secrets(home, monkeypatch):
    monkeypatch.setenv("DRIFT_CLIENT_SECRET", "super-secret-value")
    proc = subprocess.run([CLI, "auth", "status"], capture_output=True, text=True, timeout=60)
    assert "super-secret-value" not in proc.stdout + proc.stderr


def test_the_parser_lists_the_documented_commands():
    help_text = build_parser().format_help()
    for command in ("sync", "webhooks", "apply-inbox", "replay", "publish", "erase", "auth", "simulator"):
        assert command in help_text


def test_an_unexpected_value_error_is_a_failure_not_bad_usage(monkeypatch, capsys, tmp_path):
    from drift_pipeline import cli

    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(tmp_path))

    def broken(args, settings):
        raise ValueError("math domain error")

    monkeypatch.setitem(cli.COMMANDS, "publish", broken)
    assert cli.main(["publish"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "drift-pipeline publish: ValueError: math domain error"
