"""Drift credentials: a static token, or OAuth with rotating refresh tokens in an encrypted store.

Drift's refresh tokens rotate: every refresh answers a new one and the old one stops working.
So the new pair is written to the token store (Fernet-encrypted, written to a temporary file,
fsynced, renamed, mode 0600) *before* the new access token is used, and a refresh holds both
an asyncio lock (one refresh per process however many requests see a 401) and a file lock on
the store (one refresh across processes, e.g. Dagster running partitions side by side). After
taking the locks the store is read again: if another process already rotated, its tokens are
adopted instead of spending a refresh token that no longer works.

The store is keyed per org (`orgId` of the token answer). `DRIFT_REFRESH_TOKEN` only seeds an
empty store; once the store holds a refresh token for the org, the stored one wins.

When Drift says the app was disconnected from an org (the `app_disconnected` webhook), the org's
record is marked `disconnected_at` and its tokens are not used again until `auth exchange`
re-authorizes the app; with a static `DRIFT_ACCESS_TOKEN` (no store) the mark goes to
`state/disconnected_orgs.json`, tied to a fingerprint of that token, so setting a new token or
running `auth exchange` lifts it.

Nothing in this module logs, formats or reprs token text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from drift_pipeline.fsutil import atomic_write_text

from .errors import DriftAuthError, DriftBadResponse, DriftConfigError, DriftDisconnected

try:  # POSIX only; elsewhere the store is simply not locked across processes.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import httpx

    from drift_pipeline.settings import Settings

log = logging.getLogger(__name__)

STORE_VERSION = 1
DEFAULT_EXPIRY_MARGIN_SECONDS = 300.0
DISCONNECTED_FILENAME = "disconnected_orgs.json"  # under state/: static-token disconnects

CREDENTIALS_HELP = (
    "set DRIFT_ACCESS_TOKEN (a static token), or DRIFT_CLIENT_ID and DRIFT_CLIENT_SECRET with "
    "DRIFT_REFRESH_TOKEN (or run `drift-pipeline auth exchange --code CODE` once)"
)

TokenRequester = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class TokenRecord:
    """One org's tokens as held in the store. Token text never appears in repr."""

    org_id: int | None
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds
    obtained_at: float | None = None
    disconnected_at: float | None = None  # epoch seconds of Drift's app_disconnected

    @classmethod
    def from_answer(cls, answer: dict[str, Any], *, previous: "TokenRecord | None", now: float) -> "TokenRecord":
        """Build a record from a token endpoint answer, keeping what the answer leaves out from
        `previous`. Both spellings are in use: Drift's docs show `access_token`/`refresh_token`,
        its sample app reads `accessToken`/`refreshToken` (see `expires_at_from`)."""
        access_token = _first_str(answer, "access_token", "accessToken")
        if not access_token:
            raise DriftBadResponse("token endpoint answered without an access_token", endpoint="token")
        refresh_token = _first_str(answer, "refresh_token", "refreshToken")
        if not refresh_token:
            refresh_token = previous.refresh_token if previous else None
        expires_in = answer.get("expires_in", answer.get("expiresIn"))
        org_id = _as_org_id(answer.get("orgId", answer.get("org_id")))
        if org_id is None and previous is not None:
            org_id = previous.org_id
        return cls(org_id=org_id, access_token=access_token, refresh_token=refresh_token,
                   expires_at=expires_at_from(expires_in, now), obtained_at=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
            "disconnected_at": self.disconnected_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TokenRecord":
        return cls(
            org_id=_as_org_id(data.get("org_id")),
            access_token=data.get("access_token") or None,
            refresh_token=data.get("refresh_token") or None,
            expires_at=data.get("expires_at"),
            obtained_at=data.get("obtained_at"),
            disconnected_at=data.get("disconnected_at"),
        )


# An `expires_in` above a day cannot be seconds for an access token: Drift's token-info page
# gives it in milliseconds, so such a value is read as milliseconds.
_MAX_EXPIRES_IN_SECONDS = 86_400


def expires_at_from(expires_in: Any, now: float) -> float | None:
    """Epoch seconds when a token answered at `now` expires, or None when unknown.

    `expires_in` is seconds in the OAuth answer and milliseconds on `/app/token_info`, where 0
    means "never expires"; 0, a missing or a non-numeric value therefore mean "unknown: learn
    from a 401" (refreshing on every request would burn a rotating refresh token each time).
    """
    if isinstance(expires_in, bool):
        return None
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    if not seconds > 0 or seconds == float("inf"):
        return None
    if seconds > _MAX_EXPIRES_IN_SECONDS:
        seconds /= 1000.0
    return now + seconds


def _first_str(answer: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = answer.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _as_org_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _org_key(org_id: int | None) -> str:
    return str(org_id) if org_id is not None else "unknown"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


def disconnected_error(org_id: int | None, at: float, *, static: bool) -> DriftDisconnected:
    """The one-line error every request for a disconnected org raises."""
    org = f"org {org_id}" if org_id is not None else "this Drift workspace"
    fix = ("set a new DRIFT_ACCESS_TOKEN or run `drift-pipeline auth exchange --code CODE`" if static
           else "run `drift-pipeline auth exchange --code CODE`")
    return DriftDisconnected(
        f"the Drift app was disconnected from {org} at {_iso(at)} (app_disconnected webhook): "
        f"its tokens are no longer used; re-authorize the app in Drift, then {fix}")


class TokenStore:
    """The encrypted token file: `{"version", "current_org", "orgs": {org_id: record}}`."""

    def __init__(self, path: Path, key: str) -> None:
        from cryptography.fernet import Fernet

        self.path = Path(path)
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            raise DriftConfigError(
                "DRIFT_TOKEN_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                "unset it to use the generated key in $DRIFT_PIPELINE_HOME/state/token_key"
            ) from None

    def __repr__(self) -> str:
        return f"TokenStore(path={str(self.path)!r})"

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict[str, Any]:
        """The decrypted document; an empty one when there is no store yet."""
        from cryptography.fernet import InvalidToken

        if not self.path.exists():
            return {"version": STORE_VERSION, "current_org": None, "orgs": {}}
        blob = self.path.read_bytes()
        try:
            data = json.loads(self._fernet.decrypt(blob))
        except InvalidToken:
            raise DriftConfigError(
                f"the token store {self.path} cannot be decrypted with the configured "
                "DRIFT_TOKEN_KEY; restore the key it was written with, or delete the store "
                "and run `drift-pipeline auth exchange --code CODE`"
            ) from None
        except ValueError:
            raise DriftConfigError(f"the token store {self.path} is corrupt") from None
        if not isinstance(data, dict) or not isinstance(data.get("orgs"), dict):
            raise DriftConfigError(f"the token store {self.path} is corrupt")
        return data

    def records(self) -> dict[str, TokenRecord]:
        return {key: TokenRecord.from_json(value) for key, value in self.load()["orgs"].items()}

    def get(self, org_id: int | None = None) -> TokenRecord | None:
        """The record for `org_id`, or for the store's current org when None."""
        data = self.load()
        key = _org_key(org_id) if org_id is not None else data.get("current_org")
        if key is None:
            if len(data["orgs"]) != 1:
                return None
            key = next(iter(data["orgs"]))
        raw = data["orgs"].get(key)
        return TokenRecord.from_json(raw) if raw else None

    def save(self, record: TokenRecord, *, reconnected: bool = False) -> None:
        """Store `record` under its org and make it current: atomically and durably.

        An org's disconnect mark survives the save unless `reconnected` (a code exchange):
        a refresh that raced the app_disconnected webhook must not lift it.
        """
        data = self.load()
        key = _org_key(record.org_id)
        entry = record.to_json()
        previous = data["orgs"].get(key) or {}
        if not reconnected and entry.get("disconnected_at") is None:
            entry["disconnected_at"] = previous.get("disconnected_at")
        if reconnected:
            entry["disconnected_at"] = None
        data["version"] = STORE_VERSION
        data["orgs"][key] = entry
        data["current_org"] = key
        self._write(self._fernet.encrypt(json.dumps(data).encode()))

    def mark_disconnected(self, org_id: int, at: float) -> bool:
        """Mark the org's tokens unusable (Drift's app_disconnected at `at`, epoch seconds),
        under the store's lock. False when there is nothing to mark: no tokens for the org, or
        tokens obtained after `at` (the app was re-authorized since; e.g. an old event
        replayed)."""
        fd = self.acquire_lock()
        try:
            data = self.load()
            entry = data["orgs"].get(_org_key(org_id))
            if entry is None:
                return False
            if entry.get("obtained_at") is not None and entry["obtained_at"] > at:
                return False
            if entry.get("disconnected_at") is None or entry["disconnected_at"] > at:
                entry["disconnected_at"] = at
                self._write(self._fernet.encrypt(json.dumps(data).encode()))
            return True
        finally:
            self.release_lock(fd)

    def _write(self, blob: bytes) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        # The rename itself must survive a crash too.
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def acquire_lock(self) -> int | None:
        """Take the exclusive lock shared by every process using this store (blocking)."""
        if fcntl is None:  # pragma: no cover
            return None
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release_lock(self, fd: int | None) -> None:
        if fd is None:  # pragma: no cover
            return
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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
            for org, entry in _read_disconnect_file(self.disconnect_file).items():
                if entry.get("static_token_sha256") == self._fingerprint():
                    self._disconnected = (_as_org_id(org), float(entry["disconnected_at"]))
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
        entries = _read_disconnect_file(self.disconnect_file)
        entries[str(org_id)] = {"disconnected_at": at, "static_token_sha256": self._fingerprint()}
        await asyncio.to_thread(_write_disconnect_file, self.disconnect_file, entries)
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
                         record.org_id, _iso(record.expires_at))
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


def _read_disconnect_file(path: Path | None) -> dict[str, dict[str, Any]]:
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


def _write_disconnect_file(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if entries:
        atomic_write_text(path, json.dumps(entries, sort_keys=True))
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clear_disconnect_file(path: Path, org_id: int | None) -> None:
    entries = _read_disconnect_file(path)
    kept = {org: entry for org, entry in entries.items()
            if org_id is not None and _as_org_id(org) != org_id}
    if kept != entries:
        _write_disconnect_file(path, kept)


# -- building from settings --------------------------------------------------------------------
def token_store_for(settings: "Settings") -> TokenStore:
    return TokenStore(settings.token_store_path, settings.secret("token_key"))


def disconnect_file_for(settings: "Settings") -> Path:
    """Where app_disconnected marks are kept for a static `DRIFT_ACCESS_TOKEN`."""
    return settings.state_dir / DISCONNECTED_FILENAME


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


def _status_of(record: TokenRecord | None, *, mode: str, store: TokenStore | None, now: float) -> dict[str, Any]:
    return {
        "mode": mode,
        "org_id": record.org_id if record else None,
        "expires_at": _iso(record.expires_at) if record else None,
        "expired": (now >= record.expires_at) if record and record.expires_at else None,
        "has_access_token": bool(record and record.access_token),
        "has_refresh_token": bool(record and record.refresh_token),
        "token_store": str(store.path) if store else None,
        # Set after Drift's app_disconnected: requests stop until `auth exchange`.
        "disconnected_at": _iso(record.disconnected_at) if record else None,
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
        status["disconnected_at"] = _iso(static.disconnected_at())
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
