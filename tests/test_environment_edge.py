"""Configuration is read at each process's edge and passed on as values: no module of the
pipeline writes its process's environment to pass state, except the CLI's entry point, which
sets what Dagster itself reads (instance.dagster_environment)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drift_pipeline"
WRITES = re.compile(r"os\.environ\[.*\] *=|os\.environ\.update|os\.environ\.setdefault|os\.environ\.pop|putenv")


def test_only_the_cli_entry_point_writes_the_environment():
    writes = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
              for path in sorted(PACKAGE.rglob("*.py"))
              for number, line in enumerate(path.read_text().splitlines(), 1) if WRITES.search(line)]
    assert [w.split(":")[0] for w in writes] == ["drift_pipeline/cli.py"], writes
    assert "dagster_environment(settings)" in writes[0]
