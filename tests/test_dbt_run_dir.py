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

