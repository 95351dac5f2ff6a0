"""docs/reference.md is generated from the code (`make reference`): it must be current."""

from __future__ import annotations

import subprocess
import sys

from drift_pipeline.reference import PROJECT_DIR, REFERENCE, render
from drift_pipeline.settings import SETTINGS
from drift_pipeline.warehouse.schema import RAW_TABLES


def test_docs_reference_is_what_the_code_generates():
    assert REFERENCE.read_text() == render(), "docs/reference.md is stale: run `make reference`"


def test_the_reference_names_every_setting_raw_table_command_and_mart():
    text = REFERENCE.read_text()
    assert all(f"`{spec.env}`" in text for spec in SETTINGS)
    assert all(f"### `{table.name}`" in text for table in RAW_TABLES)
    for heading in ("### `drift-pipeline sync`", "### `drift-pipeline erase`", "| `make demo` |",
                    "### `marts.fct_conversations`", "| `first_response_seconds` |"):
        assert heading in text


def test_the_check_command_fails_on_a_stale_file(tmp_path, monkeypatch):
    from drift_pipeline import reference

    stale = tmp_path / "reference.md"
    stale.write_text("# Reference\n")
    monkeypatch.setattr(reference, "REFERENCE", stale)
    assert reference.main(["--check"]) == 1
    reference.main([])
    assert reference.main(["--check"]) == 0


def test_nothing_in_the_project_points_at_the_teams_shared_docs():
    """The interface is documented inside the repository (docs/reference.md, the README, the
    DECISIONLOG): no file sends its reader to a contract.md the repository does not hold."""
    listed = subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    offenders = [name for name in listed.stdout.split()
                 if name != "tests/test_reference.py" and (PROJECT_DIR / name).is_file()
                 and "contract.md" in (PROJECT_DIR / name).read_text(errors="replace")]
    assert offenders == []
