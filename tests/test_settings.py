"""Settings from the environment: defaults, validation with one-line reasons."""

from __future__ import annotations

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
])
def test_bad_values_are_one_line_errors_naming_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path), name: value})
    assert name in str(raised.value) and "\n" not in str(raised.value)
