"""What the browser tests share: Debian's Chromium, the flags it needs on a closed network, and
the skip marker when Chromium or Playwright is missing (a failure under CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dependencies import under_ci

CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM = next((p for p in CHROMIUM_PATHS if os.access(p, os.X_OK)), None)
# Without the background-networking flags Chromium dials Google's hosts at every start, and
# this machine's closed network refuses each one.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    expect = sync_playwright = None


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if sync_playwright is None:
        return "playwright is not installed (pip install -e '.[browser]')"
    if CHROMIUM is None:
        return f"no Chromium at {' or '.join(CHROMIUM_PATHS)} (`make browser-deps` installs Debian's)"
    return None


def browser_marks(timeout_s: int) -> list:
    """A browser test's marks: browser, slow, its timeout, and where it cannot run a skip with
    the reason (under CI, a failure with the reason instead: tests/dependencies.py)."""
    marks = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(timeout_s)]
    reason = missing_browser()
    if reason and under_ci():
        marks.append(pytest.mark.usefixtures("require_browser"))
    elif reason:
        marks.append(pytest.mark.skip(reason=reason))
    return marks
