"""The `auth exchange` and `auth refresh` commands: the token store (`token_store.py`) driven through a
client (`client.py`) for one call to the token endpoint. They live above both modules, so the
client can depend on the credentials and never the other way round."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .auth import OAuthTokens, auth_from_settings
from .auth_status import auth_status
from .disconnects import clear_disconnect_file, disconnect_file_for
from .token_store import TokenRecord
from .client import DriftClient

if TYPE_CHECKING:
    import httpx

    from drift_pipeline.settings import Settings


def auth_exchange(settings: "Settings", code: str, *, transport: "httpx.AsyncBaseTransport | None" = None) -> dict[str, Any]:
    """Trade an authorization code for tokens, store them encrypted, return `auth_status`."""
    oauth_settings = replace(settings, access_token=None)
    auth = auth_from_settings(oauth_settings, require_refresh_token=False)
    assert isinstance(auth, OAuthTokens)

    async def run() -> TokenRecord:
        async with DriftClient(settings.api_base_url, auth=auth, transport=transport) as client:
            return await client.auth.exchange_code(code)

    record = asyncio.run(run())
    # Re-authorized: a static token's disconnect mark for this org goes too (the store's own
    # mark was lifted by the exchange).
    clear_disconnect_file(disconnect_file_for(settings), record.org_id)
    return auth_status(oauth_settings)


def auth_refresh(settings: "Settings", *, transport: "httpx.AsyncBaseTransport | None" = None) -> dict[str, Any]:
    """Rotate the stored tokens now; returns `auth_status`."""
    oauth_settings = replace(settings, access_token=None)
    auth = auth_from_settings(oauth_settings)
    assert isinstance(auth, OAuthTokens)
    auth.ensure_connected()  # a disconnected org's refresh token is not spent either

    async def run() -> None:
        async with DriftClient(settings.api_base_url, auth=auth, transport=transport) as client:
            await client.auth.refresh(force=True)

    asyncio.run(run())
    return auth_status(oauth_settings)
