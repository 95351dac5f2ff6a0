"""What the configured Drift credentials are and whether they may be used now: `auth status`
and the reason a run must not use them (Drift disconnected the app). Never token text; no
network call."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .auth import CREDENTIALS_HELP, StaticTokenAuth, auth_from_settings
from .disconnects import disconnect_file_for
from .errors import DriftConfigError, DriftDisconnected
from .token_store import TokenRecord, TokenStore, iso_utc, token_store_for

if TYPE_CHECKING:
    from drift_pipeline.settings import Settings


def _status_of(record: TokenRecord | None, *, mode: str, store: TokenStore | None, now: float) -> dict[str, Any]:
    return {
        "mode": mode,
        "org_id": record.org_id if record else None,
        "expires_at": iso_utc(record.expires_at) if record else None,
        "expired": (now >= record.expires_at) if record and record.expires_at else None,
        "has_access_token": bool(record and record.access_token),
        "has_refresh_token": bool(record and record.refresh_token),
        "token_store": str(store.path) if store else None,
        # Set after Drift's app_disconnected: requests stop until `auth exchange`.
        "disconnected_at": iso_utc(record.disconnected_at) if record else None,
    }


def disconnection_reason(settings: "Settings") -> str | None:
    """Why the configured credentials must not be used now (Drift disconnected the app), as
    one line; None when they may be used or none are configured (the run then says so)."""
    if not settings.access_token and not settings.token_store_path.exists():
        return None  # nothing stored, so nothing marked (and no key generated just to look)
    try:
        auth = auth_from_settings(settings, require_refresh_token=False)
        auth.ensure_connected()
    except DriftDisconnected as exc:
        return exc.message
    except DriftConfigError:
        return None
    return None

# -- CLI entry points (sync) -------------------------------------------------------------------
def auth_status(settings: "Settings") -> dict[str, Any]:
    """What credentials are configured and what the store holds: org id, expiry, whether a
    refresh token is there, for the current org and (`orgs`) for each org. Never token text.
    Makes no network call."""
    now = time.time()
    if settings.access_token:
        status = _status_of(None, mode="static", store=None, now=now)
        status["has_access_token"] = True
        static = StaticTokenAuth(settings.access_token, disconnect_file=disconnect_file_for(settings))
        status["disconnected_at"] = iso_utc(static.disconnected_at())
        return status
    if not (settings.client_id and settings.client_secret):
        status = _status_of(None, mode="unconfigured", store=None, now=now)
        status["hint"] = CREDENTIALS_HELP
        return status
    store_path = settings.token_store_path
    if not store_path.exists():
        status = _status_of(None, mode="oauth", store=None, now=now)
        status["token_store"] = str(store_path)
        status["seed_refresh_token"] = bool(settings.refresh_token)
        return status
    store = token_store_for(settings)
    status = _status_of(store.get(), mode="oauth", store=store, now=now)
    # Every org this deployment syncs (one entry per `auth exchange`); the fields above are the
    # current org's (the last one exchanged or refreshed), as older versions showed them.
    status["orgs"] = [
        {k: v for k, v in _status_of(record, mode="oauth", store=None, now=now).items()
         if k not in ("mode", "token_store")}
        for _, record in sorted(store.records().items(), key=lambda item: str(item[0]).zfill(20))
    ]
    status["seed_refresh_token"] = bool(settings.refresh_token)
    return status
