"""README's layout table matches the folders: everything it names exists, and every module,
package and top-level folder of the repository is in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "drift_pipeline"


def layout_entries(readme: str) -> list[str]:
    """The paths the first column of README's "## Layout" table names, as written but with the
    folder spelled out: in a cell, a file named with its folder (`drift/auth.py`) lends that
    folder to the bare names after it (`errors.py`); a folder entry (`assets/`) lends nothing."""
    table: list[str] = []
    for line in readme.split("\n## Layout\n", 1)[1].splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break  # the first table of the section ends here
    rows = [line for line in table if line.startswith("| `")]
    entries = []
    for row in rows:
        folder = ""
        for name in re.findall(r"`([^`]+)`", row.split("|")[1]):
            if name.endswith("/"):
                entries.append(name)
                continue
            if "/" in name:
                folder = name.rsplit("/", 1)[0] + "/"
                entries.append(name)
            else:
                entries.append(folder + name)
    return entries


def resolve(entry: str) -> Path | None:
    """The file or folder an entry names: in the package first, else at the repository root."""
    for base in (PACKAGE, ROOT):
        path = base / entry
        if path.exists():
            return path
    return None


def test_layout_entries_spell_out_folders_for_the_names_after_them():
    readme = ("intro\n## Layout\ntext\n\n| module | what |\n|---|---|\n"
              "| `drift/a.py`, `b.py`, `assets/`, `c.py` | x |\n| `d.py` | y |\n| `tests/`, `bench/` | z |\n\n"
              "## Next\n| `not/this.py` | no |\n")
    assert layout_entries(readme) == ["drift/a.py", "drift/b.py", "assets/", "drift/c.py", "d.py",
                                      "tests/", "bench/"]


@pytest.fixture(scope="module")
def entries() -> list[str]:
    return layout_entries((ROOT / "README.md").read_text())


def test_everything_the_layout_table_names_exists(entries):
    assert len(entries) > 20
    missing = [entry for entry in entries if resolve(entry) is None]
    assert not missing, f"README's layout table names what is not in the repository: {missing}"


def test_every_module_and_package_of_the_pipeline_is_in_the_layout_table(entries):
    listed = {resolve(entry) for entry in entries} - {None}
    listed_folders = {path for path in listed if path.is_dir()}
    modules = [path for path in PACKAGE.rglob("*.py")
               if path.name != "__init__.py" and "__pycache__" not in path.parts]
    unlisted = sorted(str(path.relative_to(PACKAGE)) for path in modules
                      if path not in listed and not any(folder in path.parents for folder in listed_folders))
    assert not unlisted, f"modules missing from README's layout table: {unlisted}"
    packages = {init.parent for init in PACKAGE.rglob("__init__.py")} - {PACKAGE}
    unnamed = sorted(str(package.relative_to(PACKAGE)) for package in packages
                     if package not in listed_folders and not any(path.parent == package for path in listed))
    assert not unnamed, f"packages missing from README's layout table: {unnamed}"


def test_every_top_level_folder_is_in_the_layout_table(entries):
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout: the tracked folders are unknown")
    folders = {line.split("/", 1)[0] for line in tracked.stdout.splitlines() if "/" in line}
    # The package's own modules are checked one by one above; hidden folders (CI) are tooling.
    folders = {name for name in folders if not name.startswith(".")} - {PACKAGE.name}
    named = {entry.rstrip("/") for entry in entries if entry.endswith("/") and (ROOT / entry).is_dir()}
    assert folders - named == set(), f"top-level folders missing from README's layout table: {folders - named}"
    assert named <= folders, f"README's layout table names folders git does not hold: {named - folders}"
