"""Typed errors raised by the Drift client.

Each error carries a short `code` that the pipeline stores as `error_code` in `raw.exports`,
so a failed run says *why* without anyone reading a traceback. Messages name the call
(method and path, never the query string) and what to do about it; they never carry request
headers, form bodies or token text.
"""

from __future__ import annotations


class DriftError(Exception):
    """Base class of everything the Drift client raises."""

    code = "drift_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class DriftConfigError(DriftError):
    """No usable credentials or settings; the message names the environment variables to set."""

    code = "config"


class DriftAuthError(DriftError):
    """The API refused our credentials (401 after a refresh, 403, or a rejected refresh token)."""

    code = "auth"


class DriftMissingScope(DriftAuthError):
    """403 on an endpoint whose optional scope the app was not granted (`playbook_read`,
    `account_read`, `user_read` for meetings): that stream is skipped, the rest goes on."""

    code = "missing_scope"

    def __init__(self, message: str, *, scope: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.scope = scope


class DriftDisconnected(DriftAuthError):
    """Drift said the app was disconnected from the org (`app_disconnected`): its tokens are
    not used again until `drift-pipeline auth exchange` re-authorizes it."""

    code = "app_disconnected"


class DriftRateLimited(DriftError):
    """Still answered 429 after the bounded retries (or asked to wait longer than we allow)."""

    code = "rate_limited"


class DriftNotFound(DriftError):
    """404: the conversation, contact or route does not exist."""

    code = "not_found"


class DriftBadRequest(DriftError):
    """Another 4xx: the request itself is wrong; retrying will not help."""

    code = "bad_request"


class DriftServerError(DriftError):
    """Still answered 5xx after the bounded retries."""

    code = "server_error"


class DriftTransportError(DriftError):
    """Connection refused or reset, or timed out, after the bounded retries."""

    code = "transport"


class DriftBadResponse(DriftError):
    """The answer was not what the API promises (malformed JSON, unexpected shape)."""

    code = "bad_response"


__all__ = [
    "DriftAuthError",
    "DriftBadRequest",
    "DriftBadResponse",
    "DriftConfigError",
    "DriftDisconnected",
    "DriftError",
    "DriftMissingScope",
    "DriftNotFound",
    "DriftRateLimited",
    "DriftServerError",
    "DriftTransportError",
]
