"""The dbt project, loaded once for Dagster (`DbtProject`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from drift_pipeline.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


def _dbt_on_path() -> None:
    """dagster-dbt runs `dbt` from PATH; a venv used without activation has it beside python."""
    if shutil.which("dbt") is None:
        bin_dir = str(Path(sys.executable).parent)
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


_dbt_on_path()
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def ensure_manifest() -> Path:
    """Parse the dbt project if its manifest is missing (Dagster needs it before it loads)."""
    if not dbt_project.manifest_path.exists():
        os.environ.setdefault("DRIFT_PIPELINE_HOME", str(Settings.from_env().home))
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


dbt_project.prepare_if_dev()
