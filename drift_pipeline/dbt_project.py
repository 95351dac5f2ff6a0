"""The dbt project, loaded once for Dagster (`DbtProject`)."""

from __future__ import annotations

import os
from pathlib import Path

from dagster_dbt import DbtProject

from drift_pipeline.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def ensure_manifest() -> Path:
    """Parse the dbt project if its manifest is missing (Dagster needs it before it loads)."""
    if not dbt_project.manifest_path.exists():
        os.environ.setdefault("DRIFT_PIPELINE_HOME", str(Settings.from_env().home))
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


dbt_project.prepare_if_dev()
