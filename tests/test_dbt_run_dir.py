"""Each dbt invocation's run folder: fresh, under $DRIFT_PIPELINE_HOME, seeded with the last parse."""

from __future__ import annotations

import os

from drift_pipeline.dbt_project import PARTIAL_PARSE, dbt_run_dir
from drift_pipeline.settings import Settings


def test_a_run_folder_starts_from_the_newest_partial_parse(tmp_path):
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path)})
    assert not dbt_run_dir(settings, "first").exists(), "nothing parsed yet: dbt creates the folder"

    older, newer = tmp_path / "dbt" / "a", tmp_path / "dbt" / "b"
    for age, folder in ((200, older), (100, newer)):
        folder.mkdir(parents=True)
        (folder / PARTIAL_PARSE).write_bytes(folder.name.encode())
        os.utime(folder / PARTIAL_PARSE, (os.path.getmtime(folder) - age,) * 2)
    run = dbt_run_dir(settings, "refresh")
    assert run.parent == tmp_path / "dbt" and "-refresh-" in run.name
    assert (run / PARTIAL_PARSE).read_bytes() == b"b"
    assert not list(run.glob(".*tmp"))



def test_the_docs_fingerprint_follows_what_the_docs_are_made_of(tmp_path, monkeypatch):
    """Same project, target and raw tables: the same fingerprint (the docs are kept); another
    target or a raw table's columns changed: another one (they are regenerated)."""
    from drift_pipeline import dbt_project as project
    from drift_pipeline.settings import Settings
    from drift_pipeline.warehouse.schema import RAW_TABLES

    duck = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path)})
    pg = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path), "DRIFT_WAREHOUSE_URL": "postgresql://u@127.0.0.1/d"})
    first = project.docs_fingerprint(duck)
    assert project.docs_fingerprint(duck) == first
    assert project.docs_fingerprint(pg) != first
    monkeypatch.setattr(project, "RAW_TABLES", RAW_TABLES[:-1])
    assert project.docs_fingerprint(duck) != first


def test_under_dagster_dev_the_project_is_parsed_again_only_when_a_file_changed(tmp_path, monkeypatch):
    """`dagster dev` loads the code in every run's new process: parsing each time put a whole
    `dbt parse` in front of every webhook refresh. A copy of the project is parsed on the first
    load, not on the next, and again once a model changed (and the manifest then has it)."""
    import json
    import shutil

    from dagster_dbt import DbtProject

    from drift_pipeline import dbt_project as project

    copy = tmp_path / "dbt_project"
    shutil.copytree(project.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setattr(project, "dbt_project", DbtProject(project_dir=copy, profiles_dir=copy))
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    manifest = copy / "target" / "manifest.json"

    project.prepare_if_dev()
    assert project.manifest_current()
    parsed_at = manifest.stat().st_mtime_ns

    project.prepare_if_dev()  # nothing changed: no parse
    assert manifest.stat().st_mtime_ns == parsed_at

    model = copy / "models" / "marts" / "fct_conversations.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    assert not project.manifest_current()
    project.prepare_if_dev()
    assert project.manifest_current() and manifest.stat().st_mtime_ns != parsed_at
    node = json.loads(manifest.read_text())["nodes"]["model.drift_pipeline.fct_conversations"]
    assert node["raw_code"].rstrip().endswith("-- edited")

    monkeypatch.delenv("DAGSTER_IS_DEV_CLI")  # elsewhere: never at load, even when stale
    model.write_text(model.read_text() + "-- again\n")
    project.prepare_if_dev()
    assert not project.manifest_current()
