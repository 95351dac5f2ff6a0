"""Drift's `app_disconnected` marks for a static `DRIFT_ACCESS_TOKEN`, and the error a
disconnected org's requests raise.

With a token store the mark is the org's `disconnected_at` in the store (`TokenStore.
mark_disconnected`); a static token has no store, so its mark goes to
`state/disconnected_orgs.json`, tied to a fingerprint of that token: setting a new token or
running `auth exchange` lifts it. The file never holds token text.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drift_pipeline.fsutil import atomic_write_text

from .errors import DriftConfigError, DriftDisconnected
from .token_store import as_org_id, iso_utc

if TYPE_CHECKING:
    from drift_pipeline.settings import Settings

DISCONNECTED_FILENAME = "disconnected_orgs.json"  # under state/: static-token disconnects


def disconnected_error(org_id: int | None, at: float, *, static: bool) -> DriftDisconnected:
    """The one-line error every request for a disconnected org raises."""
    org = f"org {org_id}" if org_id is not None else "this Drift workspace"
    fix = ("set a new DRIFT_ACCESS_TOKEN or run `drift-pipeline auth exchange --code CODE`" if static
           else "run `drift-pipeline auth exchange --code CODE`")
    return DriftDisconnected(
        f"the Drift app was disconnected from {org} at {iso_utc(at)} (app_disconnected webhook): "
        f"its tokens are no longer used; re-authorize the app in Drift, then {fix}")


def read_disconnect_file(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None or not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
    except ValueError:
        raise DriftConfigError(f"{path} is corrupt: fix or delete it") from None
    if not isinstance(entries, dict):
        raise DriftConfigError(f"{path} is corrupt: fix or delete it")
    return {org: entry for org, entry in entries.items()
            if isinstance(entry, dict) and isinstance(entry.get("disconnected_at"), (int, float))}


def write_disconnect_file(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if entries:
        atomic_write_text(path, json.dumps(entries, sort_keys=True))
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clear_disconnect_file(path: Path, org_id: int | None) -> None:
    entries = read_disconnect_file(path)
    kept = {org: entry for org, entry in entries.items()
            if org_id is not None and as_org_id(org) != org_id}
    if kept != entries:
        write_disconnect_file(path, kept)


def disconnect_file_for(settings: "Settings") -> Path:
    """Where app_disconnected marks are kept for a static `DRIFT_ACCESS_TOKEN`."""
    return settings.state_dir / DISCONNECTED_FILENAME
