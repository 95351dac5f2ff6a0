"""What a test does when a system dependency (Chromium, PostgreSQL) is missing: skip with the
reason on a developer's machine, fail under CI (`CI` set to anything but 0/false), so a green CI
run has really run the browser and Postgres tests."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str):
    """Skip (or, under CI, fail) the current test because `reason`."""
    if under_ci():
        pytest.fail(f"{reason} (CI is set: a missing test dependency fails the run instead of skipping it)")
    pytest.skip(reason)
