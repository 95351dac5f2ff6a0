"""What the browser tests share: Debian's Chromium, the flags it needs on a closed network, and
the skip marker when Chromium or Playwright is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


def browser_marks(timeout_s: int) -> list:
    """A browser test's marks: browser, slow, its timeout, and a skip with the reason where
    it cannot run."""
    marks = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(timeout_s)]
    if sync_playwright is None:
        marks.append(pytest.mark.skip(reason="playwright is not installed (pip install -e '.[browser]')"))
    elif CHROMIUM is None:
        marks.append(pytest.mark.skip(
            reason=f"no Chromium at {' or '.join(CHROMIUM_PATHS)} (`make browser-deps` installs Debian's)"))
    return marks
