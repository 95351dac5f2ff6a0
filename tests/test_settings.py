"""Settings from the environment: defaults, validation with one-line reasons."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from drift_pipeline.settings import Settings, SettingsError
from drift_pipeline.warehouse.connection import connect


def test_duckdb_limits_default_to_a_four_gib_machine_and_reach_every_connection(tmp_path):
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path)})
    assert (settings.duckdb_memory_limit, settings.duckdb_threads) == ("2GB", 2)
    tuned = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path), "DRIFT_DUCKDB_MEMORY_LIMIT": "512MiB",
                               "DRIFT_DUCKDB_THREADS": "1"})
    conn = connect(tuned)
    try:
        limit, threads, temp = conn.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')").fetchall()[0]
    finally:
        conn.close()
    assert limit.replace(" ", "") in ("512.0MiB", "512MiB") and threads == 1
    assert temp == str(tmp_path.resolve() / "tmp" / "duckdb")


@pytest.mark.parametrize("name, value", [
    ("DRIFT_DUCKDB_MEMORY_LIMIT", "lots"),
    ("DRIFT_DUCKDB_MEMORY_LIMIT", "2 parsecs"),
    ("DRIFT_DUCKDB_THREADS", "0"),
    ("DRIFT_MAX_CONCURRENCY", "many"),
    ("DRIFT_SERVING_STORAGE_VERSION", "1.0.0"),
    ("DRIFT_SERVING_STORAGE_VERSION", "v1"),
])
def test_bad_values_are_one_line_errors_naming_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path), name: value})
    assert name in str(raised.value) and "\n" not in str(raised.value)


def test_serving_storage_version_defaults_to_one_the_duckdb_1_x_line_opens():
    assert Settings.from_env({}).serving_storage_version == "v1.0.0"
    for value in ("v1.4.0", "latest"):
        settings = Settings.from_env({"DRIFT_SERVING_STORAGE_VERSION": value})
        assert settings.serving_storage_version == value
        assert Settings.from_env(settings.as_env()) == settings


def test_history_start_defaults_to_2015():
    assert Settings.from_env({}).history_start == date(2015, 1, 1)


def test_history_start_reads_a_day():
    assert Settings.from_env({"DRIFT_HISTORY_START": "2024-02-24"}).history_start == date(2024, 2, 24)


@pytest.mark.parametrize("value", ["2024-2-24", "20240224", "2024-02-30", "yesterday", "2024-02-24T00:00"])
def test_history_start_that_is_not_a_day_is_one_line_naming_the_variable(value):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"DRIFT_HISTORY_START": value})
    message = str(error.value)
    assert "DRIFT_HISTORY_START" in message and "YYYY-MM-DD" in message and "\n" not in message


def test_history_start_in_the_future_is_refused():
    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    with pytest.raises(SettingsError, match="DRIFT_HISTORY_START .* in the future"):
        Settings.from_env({"DRIFT_HISTORY_START": tomorrow.isoformat()})


def test_the_deployment_resource_carries_each_set_variable_as_an_env_var_never_its_value(tmp_path, monkeypatch):
    """The definitions' `drift` resource names the variables (resolved where a step runs), so a
    secret never sits in the definitions, Dagster's run config or the UI; a test's resource
    carries its settings as values and reads back as them."""
    from dagster import EnvVar

    from drift_pipeline.definitions import build_definitions
    from drift_pipeline.resources import DriftApiResource

    for name in ("DRIFT_CLIENT_ID", "DRIFT_CLIENT_SECRET", "DRIFT_REFRESH_TOKEN", "DRIFT_WIDGET_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", "secret-token-value")
    monkeypatch.setenv("DRIFT_OVERLAP_MINUTES", "15")
    drift = build_definitions().resources["drift"]
    assert drift.access_token == EnvVar("DRIFT_ACCESS_TOKEN")
    assert drift.overlap_minutes == EnvVar("DRIFT_OVERLAP_MINUTES")
    assert drift.client_secret is None  # unset: the documented default, not an empty variable
    assert "secret-token-value" not in repr(drift)
    assert not (tmp_path / "home").exists(), "building the definitions creates nothing"

    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path), "DRIFT_ACCESS_TOKEN": "t",
                                  "DRIFT_RETENTION_DAYS": "30", "DRIFT_PUBLISH_TRANSCRIPTS": "1",
                                  "DRIFT_SERVING_STORAGE_VERSION": "v1.2.0",
                                  "DRIFT_WIDGET_ORIGINS": "https://www.example.com,http://localhost:8080"})
    # A test's or CLI run's resource: its settings as values, but each secret still as the
    # EnvVar of this process's environment, which must hold the run's value.
    with pytest.raises(SettingsError, match="DRIFT_ACCESS_TOKEN must be set in this process's environment"):
        DriftApiResource.for_settings(settings)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", "t")
    monkeypatch.delenv("DRIFT_PII_SALT", raising=False)
    resource = DriftApiResource.for_settings(settings)
    assert resource.access_token == EnvVar("DRIFT_ACCESS_TOKEN") and resource.retention_days == "30"
    assert resource.settings() == settings
    bad = DriftApiResource.for_settings(settings).model_copy(update={"overlap_minutes": "soon"})
    with pytest.raises(SettingsError, match="DRIFT_OVERLAP_MINUTES must be an integer"):
        bad.settings()


def test_importing_the_definitions_writes_nothing_and_leaves_the_environment_alone(tmp_path):
    """Every Dagster process imports the definitions, often: nothing is created under the home
    and no variable (PATH included: dbt is found beside python) changes."""
    import json
    import subprocess
    import sys

    script = ("import json, os; before = dict(os.environ); import drift_pipeline.definitions; "
              "print(json.dumps(sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))))")
    home = tmp_path / "home"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DRIFT_PIPELINE_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert not home.exists()
