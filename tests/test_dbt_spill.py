"""A dbt build that spills to disk, as a large workspace's first build does (3M conversations
and past): the project's own profile, in a home where nothing has made DuckDB's spill folder.

Two failures were seen at 3M and 10M before: DuckDB could not create `<home>/tmp/duckdb` (it makes
only the last level), and with the folder made by hand dbt-duckdb's next node set
`temp_directory` again on its new cursor, which DuckDB refuses once a query has spilled. The
models here are three sorts of 1.5M rows under a 40 MB memory limit: each must spill, and each
runs on its own cursor after the one before spilled.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from drift_pipeline.dbt_project import DBT_PROJECT_DIR, VENV_DBT, dbt_run_dir, dbt_vars
from drift_pipeline.settings import Settings

SORT = "select i, md5(i::varchar) as s from range(1500000) t(i) order by s"


def _spill_project(root):
    (root / "models").mkdir(parents=True)
    shutil.copyfile(DBT_PROJECT_DIR / "profiles.yml", root / "profiles.yml")
    (root / "dbt_project.yml").write_text(
        "name: spill\nversion: '1.0'\nprofile: drift_pipeline\nmodels:\n  spill:\n    +materialized: table\n")
    for name in ("first_sort", "second_sort", "third_sort"):
        (root / "models" / f"{name}.sql").write_text(SORT)
    return root


def test_a_build_that_spills_runs_with_the_projects_profile_in_a_new_home(tmp_path):
    home = tmp_path / "home"
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(home), "DRIFT_DUCKDB_MEMORY_LIMIT": "40MB",
                                  "DRIFT_DUCKDB_THREADS": "1"})
    run_dir = dbt_run_dir(settings, "spill")  # what every pipeline dbt invocation starts with
    assert settings.duckdb_temp_dir.is_dir()
    project = _spill_project(tmp_path / "project")
    # The home and the limits reach the profile as the pipeline passes them: as dbt vars.
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    built = subprocess.run(
        [str(VENV_DBT) if VENV_DBT.exists() else "dbt", "run", "--threads", "1", *dbt_vars(settings),
         "--project-dir", str(project),
         "--profiles-dir", str(project), "--target-path", str(run_dir), "--log-path", str(run_dir)],
        env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-2000:]
    assert "PASS=3" in built.stdout


def test_the_sorts_do_not_fit_in_the_memory_limit_without_spilling(tmp_path):
    """The test above proves something only if its models spill: without a spill folder the
    same sort fails for want of memory."""
    import duckdb
    import pytest

    with duckdb.connect(str(tmp_path / "w.duckdb"), config={"memory_limit": "40MB", "threads": "1",
                                                              "temp_directory": ""}) as conn:
        with pytest.raises(duckdb.OutOfMemoryException):
            conn.execute(f"create table t as {SORT}")
