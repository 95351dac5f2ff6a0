"""Several Drift orgs in one deployment: which orgs to sync, and one client per org.

An agency installs the app on many workspaces; each `auth exchange` adds that org's entry to the
token store (keyed by the token answer's `orgId`). Each org has its own tokens and Drift limits
each org on its own (600/min), so each org gets its own `DriftClient`: its own token, pacer and
budget. A static `DRIFT_ACCESS_TOKEN` (or a store that never learnt its org id) is one org, told
by its tokens: `None` stands for it, and every event is taken to be its own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .auth import auth_from_settings
from .token_store import token_store_for
from .client import DriftClient
from .errors import DriftConfigError, DriftDisconnected

if TYPE_CHECKING:
    from drift_pipeline.settings import Settings


def stored_org_ids(settings: "Settings") -> list[int]:
    """Orgs the token store holds tokens for (disconnected ones too); [] with a static token or
    no store."""
    if settings.access_token or not settings.token_store_path.exists():
        return []
    return sorted({r.org_id for r in token_store_for(settings).records().values() if r.org_id is not None})


@dataclass(frozen=True)
class DeploymentOrgs:
    """The orgs a sync covers (`None`: the one org of a static token), and one line for each org
    left out because Drift disconnected the app from it."""

    connected: list[int | None]
    disconnected: dict[int | None, str] = field(default_factory=dict)


def deployment_orgs(settings: "Settings") -> DeploymentOrgs:
    """Every org this deployment syncs now: the token store's orgs, oldest id first, minus those
    Drift disconnected (until `auth exchange` re-authorizes them)."""
    org_ids: list[int | None] = list(stored_org_ids(settings)) or [None]
    connected, disconnected = [], {}
    for org_id in org_ids:
        reason = disconnection_of(settings, org_id)
        if reason is None:
            connected.append(org_id)
        else:
            disconnected[org_id] = reason
    return DeploymentOrgs(connected, disconnected)


def disconnection_of(settings: "Settings", org_id: int | None) -> str | None:
    """Why this org's tokens must not be used now (one line), or None."""
    if not settings.access_token and not settings.token_store_path.exists():
        return None  # nothing stored, so nothing marked (and no key generated just to look)
    try:
        auth_from_settings(settings, org_id=org_id, require_refresh_token=False).ensure_connected()
    except DriftDisconnected as exc:
        return exc.message
    except DriftConfigError:  # missing credentials: the run itself says so in its own words
        return None
    return None


class OrgClients:
    """One `DriftClient` per org, opened on first use, closed together:
    `async with OrgClients(settings) as clients: clients.for_org(org_id)`."""

    def __init__(self, settings: "Settings", **client_options: Any) -> None:
        self.settings = settings
        self._options = client_options
        self.org_ids = set(stored_org_ids(settings))
        self._clients: dict[int | None, DriftClient] = {}

    @property
    def single(self) -> bool:
        """One org whose id the credentials do not name (a static token): it takes every event."""
        return not self.org_ids

    def has_tokens(self, org_id: int | None) -> bool:
        return self.single or org_id in self.org_ids

    def for_org(self, org_id: int | None) -> DriftClient:
        key = None if self.single else org_id
        if key not in self._clients:
            self._clients[key] = DriftClient.from_settings(self.settings, org_id=key, **self._options)
        return self._clients[key]

    def calls_by_endpoint(self) -> dict[str, int]:
        """API calls so far by endpoint, over every org's client."""
        total: Counter = Counter()
        for client in self._clients.values():
            total.update(client.stats.calls_by_endpoint)
        return dict(total)

    async def mark_disconnected(self, org_id: int, at: float) -> bool:
        """Record Drift's app_disconnected for `org_id` (see `OAuthTokens.mark_disconnected`);
        False when no tokens here belong to it."""
        if self.single or org_id in self._clients:
            return await self.for_org(org_id).auth.mark_disconnected(org_id, at)
        if org_id not in self.org_ids:
            return False
        return await asyncio.to_thread(token_store_for(self.settings).mark_disconnected, org_id, at)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> "OrgClients":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


def missing_tokens_reason(org_id: int | None) -> str:
    """One line for anything asking about an org this deployment holds no tokens for."""
    return f"org {org_id} has no tokens here: run `drift-pipeline auth exchange --code CODE` for it"
