"""Drift credentials, two strategies: a static token (`StaticTokenAuth`) or OAuth with rotating
refresh tokens (`OAuthTokens`); `auth_from_settings` picks the one the settings describe.

Drift's refresh tokens rotate: every refresh answers a new one and the old one stops working.
So the new pair is written to the token store (`token_store.py`) *before* the new access token
is used, and a refresh holds both an asyncio lock (one refresh per process however many
requests see a 401) and the store's file lock (one refresh across processes, e.g. Dagster
running partitions side by side). After taking the locks the store is read again: if another
process already rotated, its tokens are adopted instead of spending a refresh token that no
longer works. `DRIFT_REFRESH_TOKEN` only seeds an empty store; once the store holds a refresh
token for the org, the stored one wins.

When Drift says the app was disconnected from an org (the `app_disconnected` webhook), both
strategies refuse its requests (`ensure_connected`) until `auth exchange` re-authorizes the
app: OAuth through the mark in the token store, a static token through `disconnects.py`'s file.

Nothing in this module logs, formats or reprs token text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from .disconnects import disconnect_file_for, disconnected_error, read_disconnect_file, write_disconnect_file
from .errors import DriftAuthError, DriftBadResponse, DriftConfigError
from .token_store import TokenRecord, TokenStore, as_org_id, iso_utc, token_store_for

if TYPE_CHECKING:
    from drift_pipeline.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_EXPIRY_MARGIN_SECONDS = 300.0

CREDENTIALS_HELP = (
    "set DRIFT_ACCESS_TOKEN (a static token), or DRIFT_CLIENT_ID and DRIFT_CLIENT_SECRET with "
    "DRIFT_REFRESH_TOKEN (or run `drift-pipeline auth exchange --code CODE` once)"
)

TokenRequester = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]


class StaticTokenAuth:
    """A fixed access token (`DRIFT_ACCESS_TOKEN`): nothing to refresh."""

    kind = "static"

    def __init__(self, access_token: str, *, org_id: int | None = None,
                 disconnect_file: Path | None = None) -> None:
        if not access_token:
            raise DriftConfigError(f"empty access token: {CREDENTIALS_HELP}")
        self._access_token = access_token
        self.org_id = org_id
        # Where app_disconnected marks are kept without a token store; None: never marked.
        self.disconnect_file = disconnect_file
        self._disconnected: tuple[int | None, float] | None = None
        self._disconnect_read = False

    def _fingerprint(self) -> str:
        # Ties a disconnect mark to this token without storing it: a new token lifts the mark.
        return hashlib.sha256(self._access_token.encode("utf-8")).hexdigest()[:16]

    def disconnected_at(self) -> float | None:
        """When Drift disconnected the app from this token's workspace, if it did (read once)."""
        if not self._disconnect_read:
            self._disconnect_read = True
            for org, entry in read_disconnect_file(self.disconnect_file).items():
                if entry.get("static_token_sha256") == self._fingerprint():
                    self._disconnected = (as_org_id(org), float(entry["disconnected_at"]))
                    break
        return self._disconnected[1] if self._disconnected else None

    def ensure_connected(self) -> None:
        """Raise `DriftDisconnected` when Drift disconnected the app from this workspace."""
        at = self.disconnected_at()
        if at is not None:
            raise disconnected_error(self._disconnected[0], at, static=True)  # type: ignore[index]

    async def mark_disconnected(self, org_id: int, at: float) -> bool:
        """Record Drift's app_disconnected for `org_id` (in the state file); False when this
        auth has no state file to record it in."""
        if self.disconnect_file is None:
            return False
        entries = read_disconnect_file(self.disconnect_file)
        entries[str(org_id)] = {"disconnected_at": at, "static_token_sha256": self._fingerprint()}
        await asyncio.to_thread(write_disconnect_file, self.disconnect_file, entries)
        self._disconnected, self._disconnect_read = (org_id, at), True
        return True

    def bind(self, requester: TokenRequester) -> None:
        """Static tokens never call the token endpoint."""

    async def access_token(self) -> str:
        return self._access_token

    async def on_unauthorized(self, used_token: str) -> str:
        raise DriftAuthError(
            "the Drift API rejected DRIFT_ACCESS_TOKEN (401): it is expired or revoked; "
            "set a fresh token, or use DRIFT_CLIENT_ID/DRIFT_CLIENT_SECRET with a refresh token",
            status=401,
        )

    def secrets(self) -> list[str]:
        return [self._access_token]

    def has_refresh_token(self) -> bool:
        return False

    def can_refresh(self) -> bool:
        """A static token cannot be renewed: a 401 is final."""
        return False

    def __repr__(self) -> str:
        return f"StaticTokenAuth(org_id={self.org_id!r})"


class OAuthTokens:
    """OAuth access tokens refreshed with rotating refresh tokens kept in a `TokenStore`."""

    kind = "oauth"

    def __init__(
        self,
        store: TokenStore,
        client_id: str,
        client_secret: str,
        *,
        seed_refresh_token: str | None = None,
        org_id: int | None = None,
        expiry_margin_seconds: float = DEFAULT_EXPIRY_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise DriftConfigError(f"OAuth needs DRIFT_CLIENT_ID and DRIFT_CLIENT_SECRET: {CREDENTIALS_HELP}")
        self.store = store
        self.client_id = client_id
        self._client_secret = client_secret
        self._seed_refresh_token = seed_refresh_token
        self.org_id = org_id
        self.expiry_margin_seconds = expiry_margin_seconds
        self._clock = clock
        self._token: TokenRecord | None = None
        self._loaded = False
        self._lock = asyncio.Lock()
        self._requester: TokenRequester | None = None
        self._used_refresh_tokens: list[str] = []  # kept only so redaction can scrub them
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"OAuthTokens(client_id={self.client_id!r}, org_id={self.org_id!r}, store={self.store!r})"

    def bind(self, requester: TokenRequester) -> None:
        """`requester(form) -> answer` POSTs to the token endpoint (the client's retry path)."""
        self._requester = requester

    # -- reading -----------------------------------------------------------------------------
    def _load(self) -> TokenRecord | None:
        record = self.store.get(self.org_id)
        if record is not None and self.org_id is None:
            self.org_id = record.org_id
        return record

    def current(self) -> TokenRecord | None:
        """The tokens in use (loading them from the store the first time)."""
        if not self._loaded:
            self._token = self._load()
            self._loaded = True
        return self._token

    def has_refresh_token(self) -> bool:
        record = self.current()
        return bool((record and record.refresh_token) or self._seed_refresh_token)

    def can_refresh(self) -> bool:
        """OAuth tokens are renewed on a 401 (the refresh itself fails fast when it cannot)."""
        return True

    def _expiring(self, record: TokenRecord) -> bool:
        if not record.access_token:
            return True
        if record.expires_at is None:
            return False  # no expiry given: find out through a 401
        lifetime = (record.expires_at - record.obtained_at) if record.obtained_at else None
        margin = self.expiry_margin_seconds
        if lifetime is not None and lifetime > 0:
            margin = min(margin, lifetime / 5.0)
        return self._clock() >= record.expires_at - margin

    def disconnected_at(self) -> float | None:
        """When Drift disconnected the app from this org, if it did (from the token store)."""
        record = self.current()
        return record.disconnected_at if record is not None else None

    def ensure_connected(self) -> None:
        """Raise `DriftDisconnected` when the org's tokens are marked disconnected."""
        at = self.disconnected_at()
        if at is not None:
            raise disconnected_error(self.org_id, at, static=False)

    async def mark_disconnected(self, org_id: int, at: float) -> bool:
        """Record Drift's app_disconnected for `org_id` in the token store; False when the store
        holds no tokens for that org obtained before `at`."""
        marked = await asyncio.to_thread(self.store.mark_disconnected, org_id, at)
        if marked and (self.org_id is None or self.org_id == org_id):
            self._token, self._loaded = self._load(), True  # this process stops at once too
        return marked

    def secrets(self) -> list[str]:
        found = [self._client_secret]
        if self._seed_refresh_token:
            found.append(self._seed_refresh_token)
        if self._token is not None:
            found += [t for t in (self._token.access_token, self._token.refresh_token) if t]
        return found + self._used_refresh_tokens

    # -- using -------------------------------------------------------------------------------
    async def access_token(self) -> str:
        """A valid access token, refreshing first when the current one is about to expire."""
        record = self.current()
        if record is not None and not self._expiring(record):
            return record.access_token  # type: ignore[return-value]
        record = await self.refresh(stale_access_token=record.access_token if record else None)
        return record.access_token  # type: ignore[return-value]

    async def on_unauthorized(self, used_token: str) -> str:
        """A request got 401 with `used_token`: the token to retry with (refreshing at most once
        however many concurrent requests report the same stale token)."""
        record = await self.refresh(stale_access_token=used_token)
        return record.access_token  # type: ignore[return-value]

    async def refresh(self, *, stale_access_token: str | None = None, force: bool = False) -> TokenRecord:
        """Rotate the tokens unless someone (this process or another) already replaced
        `stale_access_token`; returns the tokens to use."""
        async with self._lock:
            current = self.current()
            if not force and current is not None and current.access_token and \
                    current.access_token != stale_access_token and not self._expiring(current):
                return current  # another task refreshed while we waited for the lock
            async with _locked(self.store):
                stored = self._load()
                if not force and stored is not None and stored.access_token and \
                        stored.access_token != stale_access_token and not self._expiring(stored):
                    self._token = stored  # another process rotated: adopt, do not spend a token
                    return stored
                refresh_token = (stored.refresh_token if stored else None) or self._seed_refresh_token
                if not refresh_token:
                    raise DriftConfigError(f"no refresh token in the token store: {CREDENTIALS_HELP}")
                answer = await self._request({
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                })
                record = TokenRecord.from_answer(answer, previous=stored or TokenRecord(
                    org_id=self.org_id, refresh_token=refresh_token), now=self._clock())
                # Persist before use: the old refresh token is already dead.
                self.store.save(record)
                self._used_refresh_tokens.append(refresh_token)
                self._token = record
                self.org_id = record.org_id
                self.refreshes += 1
                log.info("drift: access token refreshed for org %s (expires %s)",
                         record.org_id, iso_utc(record.expires_at))
                return record

    async def exchange_code(self, code: str) -> TokenRecord:
        """Trade an authorization code for the first token pair and store it."""
        if not code:
            raise DriftConfigError("an authorization code is required: --code CODE")
        async with self._lock:
            async with _locked(self.store):
                answer = await self._request({"grant_type": "authorization_code", "code": code})
                record = TokenRecord.from_answer(answer, previous=None, now=self._clock())
                if not record.refresh_token:
                    raise DriftBadResponse("token endpoint answered without a refresh_token", endpoint="token")
                self.store.save(record, reconnected=True)
                self._token, self._loaded = record, True
                self.org_id = record.org_id
                log.info("drift: authorization code exchanged for org %s", record.org_id)
                return record

    async def _request(self, form: dict[str, str]) -> dict[str, Any]:
        if self._requester is None:
            raise RuntimeError("OAuthTokens is not bound to a client (use it through DriftClient)")
        return await self._requester({"client_id": self.client_id, "client_secret": self._client_secret, **form})


@contextlib.asynccontextmanager
async def _locked(store: TokenStore) -> AsyncIterator[None]:
    """The store's file lock, taken without blocking the event loop."""
    fd = await asyncio.to_thread(store.acquire_lock)
    try:
        yield
    finally:
        store.release_lock(fd)


# -- building from settings --------------------------------------------------------------------
def auth_from_settings(settings: "Settings", *, org_id: int | None = None,
                       require_refresh_token: bool = True) -> StaticTokenAuth | OAuthTokens:
    """The credentials the settings describe. A static token wins over OAuth settings."""
    if settings.access_token:
        return StaticTokenAuth(settings.access_token, org_id=org_id,
                               disconnect_file=disconnect_file_for(settings))
    missing = [name for name, value in (("DRIFT_CLIENT_ID", settings.client_id),
                                        ("DRIFT_CLIENT_SECRET", settings.client_secret)) if not value]
    if len(missing) == 2:
        raise DriftConfigError(f"no Drift credentials configured: {CREDENTIALS_HELP}")
    if missing:
        raise DriftConfigError(f"{' and '.join(missing)} not set: {CREDENTIALS_HELP}")
    auth = OAuthTokens(
        token_store_for(settings),
        settings.client_id,  # type: ignore[arg-type]
        settings.client_secret,  # type: ignore[arg-type]
        seed_refresh_token=settings.refresh_token,
        org_id=org_id,
    )
    if require_refresh_token and not auth.has_refresh_token():
        raise DriftConfigError(
            "no refresh token: the token store is empty and DRIFT_REFRESH_TOKEN is not set "
            "(run `drift-pipeline auth exchange --code CODE`, or set DRIFT_REFRESH_TOKEN)"
        )
    return auth
