"""The encrypted token store: each Drift org's tokens (`TokenRecord`) in one Fernet file.

The file is written to a temporary file, fsynced, renamed and mode 0600, and guarded by a file
lock shared by every process of the deployment (`acquire_lock`), so a refresh in one process
and a read in another never see half a rotation. The store is keyed per org (`orgId` of the
token answer); an org's record also carries Drift's `app_disconnected` mark (`disconnected_at`).

Nothing in this module logs, formats or reprs token text.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DriftBadResponse, DriftConfigError

try:  # POSIX only; elsewhere the store is simply not locked across processes.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from drift_pipeline.settings import Settings

STORE_VERSION = 1


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
        org_id = as_org_id(answer.get("orgId", answer.get("org_id")))
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
            org_id=as_org_id(data.get("org_id")),
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


def as_org_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def org_key(org_id: int | None) -> str:
    return str(org_id) if org_id is not None else "unknown"


def iso_utc(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


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
        key = org_key(org_id) if org_id is not None else data.get("current_org")
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
        key = org_key(record.org_id)
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
            entry = data["orgs"].get(org_key(org_id))
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


def token_store_for(settings: "Settings") -> TokenStore:
    return TokenStore(settings.token_store_path, settings.secret("token_key"))
