"""One request to Drift's REST API, made safely: auth, pacing, retries and error mapping.

`DriftSession` is the base of `DriftClient` (client.py): the client says *what* to fetch, the
session how, and nothing else builds requests or sleeps:

- auth: a static token or rotating OAuth tokens (`auth.py`); every 401 with the current token
  refreshes and retries (tokens can die early, more than once in a long run), at most
  `MAX_REFRESHES_PER_REQUEST` times for one request, so a dead refresh token fails fast.
- rate limits: a pacer per bucket (`ratelimit.py`) fed by the `X-RateLimit-*` headers, plus
  `Retry-After` on 429; with `shared_budget_dir` (every client `from_settings` has it: the
  home's `state/`), the pacers of all processes of one org draw from one file-locked budget.
- retries: exponential backoff with full jitter on 429, 5xx, timeouts, connection errors and
  malformed JSON, at most `max_retries` times, then a typed error (`errors.py`). Every call
  we make is a read (the reports POST too), so retrying is always safe.
- concurrency: at most `max_concurrency` requests in flight (an asyncio.Semaphore).
- a URL target (a next-page link) is re-based onto the configured base URL before any token is
  sent, or refused (`paging.rebase_url`).

Nothing here logs or raises token text: error messages name the method and path only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal, Self

import httpx

from .auth import CREDENTIALS_HELP, OAuthTokens, StaticTokenAuth, auth_from_settings
from .errors import (
    DriftAuthError,
    DriftBadRequest,
    DriftBadResponse,
    DriftConfigError,
    DriftError,
    DriftMissingScope,
    DriftNotFound,
    DriftRateLimited,
    DriftServerError,
    DriftTransportError,
)
from .paging import is_url, rebase_url
from .parsing import error_reason, oauth_error_code, transcript_text
from .ratelimit import RateLimiter, RateLimitInfo, SharedBudget, backoff_delay, parse_rate_limit_headers

if TYPE_CHECKING:
    from drift_pipeline.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://driftapi.com"
DEFAULT_RATE_LIMIT_PER_MINUTE = 600.0
REPORTS_RATE_LIMIT_PER_MINUTE = 60.0
# Keys of `ClientStats.calls_by_endpoint`.
ENDPOINTS = ("list", "detail", "messages", "users", "contact", "contact_lookup", "transcript", "reports",
             "meetings", "playbooks", "accounts", "token")
# Optional scopes: a workspace whose app lacks one answers 403 on that endpoint alone, and the
# stream it feeds is skipped (`DriftMissingScope` names the scope).
ENDPOINT_SCOPES = {"meetings": "user_read", "playbooks": "playbook_read", "accounts": "account_read"}
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# How many times one request may refresh after a 401 before giving up: a token can be revoked
# between the refresh and its first use, but not forever.
MAX_REFRESHES_PER_REQUEST = 3
_REDACTED = "[redacted]"


@dataclass
class ClientStats:
    """Counters for one client's lifetime (`calls` counts HTTP attempts, retries included)."""

    calls: int = 0
    calls_by_endpoint: Counter = field(default_factory=Counter)
    retries: int = 0
    responses_429: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    malformed_responses: int = 0
    token_refreshes: int = 0
    min_remaining: float | None = None
    rate_limit: float | None = None
    throttled_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "calls_by_endpoint": dict(self.calls_by_endpoint),
            "retries": self.retries,
            "responses_429": self.responses_429,
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "malformed_responses": self.malformed_responses,
            "token_refreshes": self.token_refreshes,
            "min_remaining": self.min_remaining,
            "rate_limit": self.rate_limit,
            "throttled_seconds": round(self.throttled_seconds, 3),
        }


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying; `error` is raised when out of retries."""

    def __init__(self, error: DriftError, *, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after

class DriftSession:
    """Authenticated, paced, retried requests to one Drift org. Use as `async with ...:`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        access_token: str | None = None,
        auth: StaticTokenAuth | OAuthTokens | None = None,
        org_id: int | None = None,
        max_concurrency: int = 8,
        rate_limit_per_minute: float = DEFAULT_RATE_LIMIT_PER_MINUTE,
        reports_rate_limit_per_minute: float = REPORTS_RATE_LIMIT_PER_MINUTE,
        utilization: float = 0.97,
        max_retries: int = 5,
        backoff_base_seconds: float = 0.5,
        backoff_cap_seconds: float = 30.0,
        max_retry_after_seconds: float = 300.0,
        timeout_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        shared_budget_dir: "Path | str | None" = None,
    ) -> None:
        if auth is None:
            if not access_token:
                raise DriftConfigError(f"no Drift credentials given: {CREDENTIALS_HELP}")
            auth = StaticTokenAuth(access_token, org_id=org_id)
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self._org_id_override = org_id
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._server_clock: tuple[datetime, float] | None = None  # (Drift's Date, monotonic then)
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._limiters = {
            "default": RateLimiter(rate_limit_per_minute, utilization=utilization, sleep=sleep),
            "reports": RateLimiter(reports_rate_limit_per_minute, utilization=utilization, sleep=sleep),
        }
        self._shared_budget_dir = Path(shared_budget_dir) if shared_budget_dir is not None else None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"Accept": "application/json", "User-Agent": "drift-pipeline"},
            follow_redirects=False,
        )
        self.auth.bind(self._token_request)
        _quiet_httpx_urls()

    @classmethod
    def from_settings(cls, settings: "Settings", **overrides: Any) -> Self:
        """A client for the credentials and limits in `settings` (docs/reference.md:
        Environment); keyword overrides win (e.g. `transport=` in tests)."""
        options: dict[str, Any] = {"max_concurrency": settings.max_concurrency,
                                   "shared_budget_dir": settings.state_dir}
        options.update(overrides)
        if "auth" not in options and "access_token" not in options:
            options["auth"] = auth_from_settings(settings, org_id=options.get("org_id"))
        return cls(settings.api_base_url, **options)

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        for limiter in self._limiters.values():
            if limiter.shared is not None:
                limiter.shared.close()

    def budget_key(self) -> str:
        """Whose rate-limit budget this client spends: the org when known, else the API host
        (a static token whose org is not known yet: one home holds one workspace's token)."""
        org_id = self.org_id
        if org_id is not None:
            return f"org-{org_id}"
        return "api-" + hashlib.sha256(self.base_url.encode()).hexdigest()[:12]

    def _shared_limiter(self, bucket: str) -> RateLimiter:
        limiter = self._limiters[bucket]
        if self._shared_budget_dir is not None and limiter.shared is None:
            limiter.shared = SharedBudget(self._shared_budget_dir / f"ratelimit-{self.budget_key()}-{bucket}")
        return limiter

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_url={self.base_url!r}, auth={self.auth.kind}, org_id={self.org_id!r}, "
                f"max_concurrency={self.max_concurrency})")

    @property
    def org_id(self) -> int | None:
        """The Drift org (workspace) these credentials belong to, when known."""
        if self._org_id_override is not None:
            return self._org_id_override
        if isinstance(self.auth, OAuthTokens):
            self.auth.current()
        return self.auth.org_id

    def limiter(self, bucket: str = "default") -> RateLimiter:
        return self._limiters[bucket]

    def server_now(self) -> datetime | None:
        """Drift's clock (naive UTC) as its last answer's `Date` header stated it, moved on by
        the time since; None before any answer. The window of meetings Drift serves is
        counted from its clock, not ours."""
        if self._server_clock is None:
            return None
        stated, at = self._server_clock
        return stated + timedelta(seconds=time.monotonic() - at)

    # -- the request loop --------------------------------------------------------------------
    async def _request_json(self, method: str, target: str, *, endpoint: str, params=None, json_body=None,
                            bucket: str = "default") -> dict[str, Any]:
        return await self._request(method, target, endpoint=endpoint, params=params, json_body=json_body,
                                   bucket=bucket, expect="json")

    async def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        answer = await self._request("POST", "/oauth2/token", endpoint="token", form=form, authenticated=False,
                                     expect="json")
        if form.get("grant_type") == "refresh_token":
            self.stats.token_refreshes += 1
        return answer

    async def _request(
        self,
        method: str,
        target: str,
        *,
        endpoint: str,
        params: list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        authenticated: bool = True,
        bucket: str = "default",
        expect: Literal["json", "any_json", "text"] = "json",
    ) -> Any:
        label = f"{method} {_path_of(target)}"
        if is_url(target):
            target = rebase_url(self.base_url, target, endpoint)  # refuses foreign hosts before any token is sent
        attempt = 0
        refreshes = 0
        if authenticated:
            self.auth.ensure_connected()  # never use a disconnected org's tokens
        limiter = self._shared_limiter(bucket) if authenticated else self._limiters[bucket]
        while True:
            token = await self.auth.access_token() if authenticated else None
            try:
                response = await self._send(method, target, endpoint=endpoint, params=params, json_body=json_body,
                                            form=form, token=token, limiter=limiter, label=label)
                if response.status_code == 401 and authenticated and self.auth.can_refresh() \
                        and refreshes < MAX_REFRESHES_PER_REQUEST:
                    # Every 401 with the token we hold means it died (revoked, app reinstalled,
                    # server-side limits), however recently it was refreshed: refresh again.
                    refreshes += 1
                    log.info("drift %s answered 401; refreshing credentials and retrying (%d/%d)", label,
                             refreshes, MAX_REFRESHES_PER_REQUEST)
                    await self.auth.on_unauthorized(token)  # type: ignore[arg-type]
                    continue
                if response.status_code == 401 and authenticated and refreshes:
                    raise DriftAuthError(
                        f"{label} refused freshly refreshed credentials {refreshes} times in a row "
                        f"(401{self._detail(response)}); the app may have been uninstalled or its access "
                        "revoked: run `drift-pipeline auth exchange --code CODE`", status=401, endpoint=endpoint)
                if response.status_code == 401 and authenticated:
                    await self.auth.on_unauthorized(token)  # type: ignore[arg-type]  # static: raises
                return self._interpret(response, endpoint=endpoint, label=label, expect=expect)
            except _Retry as failure:
                if attempt >= self.max_retries:
                    raise failure.error from None
                retry_after = failure.retry_after
                if retry_after is not None and retry_after > self.max_retry_after_seconds:
                    error = failure.error
                    raise type(error)(
                        f"{error.message} (Retry-After {retry_after:g}s is longer than the "
                        f"{self.max_retry_after_seconds:g}s we wait)",
                        status=error.status, endpoint=error.endpoint, retry_after=retry_after) from None
                delay = backoff_delay(attempt, base=self.backoff_base_seconds, cap=self.backoff_cap_seconds,
                                      rng=self._rng)
                if retry_after is not None:
                    # The limiter holds every request until Retry-After has passed; a little
                    # jitter on top spreads the restart.
                    delay = retry_after + min(delay, retry_after * 0.1)
                attempt += 1
                self.stats.retries += 1
                log.warning("drift: %s; retry %d/%d in %.2fs", failure.error.message, attempt, self.max_retries,
                            delay)
                await self._sleep(delay)

    async def _send(self, method, target, *, endpoint, params, json_body, form, token, limiter, label) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        async with self._semaphore:
            self.stats.throttled_seconds += await limiter.acquire()
            self.stats.calls += 1
            self.stats.calls_by_endpoint[endpoint] += 1
            try:
                response = await self._http.request(method, target, params=params, json=json_body, data=form,
                                                    headers=headers)
                await response.aread()
            except httpx.TimeoutException as exc:
                self.stats.transport_errors += 1
                raise _Retry(DriftTransportError(f"{label} timed out ({type(exc).__name__})", endpoint=endpoint)) from None
            except httpx.TransportError as exc:
                self.stats.transport_errors += 1
                raise _Retry(DriftTransportError(f"{label} failed: {type(exc).__name__}", endpoint=endpoint)) from None
        info = parse_rate_limit_headers(response.headers)
        self._observe(limiter, info, response.status_code)
        self._observe_clock(response.headers.get("date"))
        log.debug("drift %s -> %s limit=%s remaining=%s reset=%s retry_after=%s", label, response.status_code,
                  _fmt(info.limit), _fmt(info.remaining), _fmt(info.reset), _fmt(info.retry_after))
        return response

    def _observe_clock(self, date_header: str | None) -> None:
        if not date_header:
            return
        try:
            stated = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            return
        if stated.tzinfo is not None:
            stated = stated.astimezone(timezone.utc).replace(tzinfo=None)
        self._server_clock = (stated, time.monotonic())

    def _observe(self, limiter: RateLimiter, info: RateLimitInfo, status: int) -> None:
        limiter.observe(info, status)
        if limiter is self._limiters["default"]:
            if info.limit is not None:
                self.stats.rate_limit = info.limit
            if info.remaining is not None and (self.stats.min_remaining is None
                                               or info.remaining < self.stats.min_remaining):
                self.stats.min_remaining = info.remaining
        if status == 429:
            self.stats.responses_429 += 1
            limiter.on_rate_limited(info.retry_after)

    def _interpret(self, response: httpx.Response, *, endpoint: str, label: str, expect: str) -> Any:
        status = response.status_code
        if status == 429:
            retry_after = parse_rate_limit_headers(response.headers).retry_after
            raise _Retry(DriftRateLimited(f"{label} answered 429 (rate limited)", status=429, endpoint=endpoint,
                                          retry_after=retry_after), retry_after=retry_after)
        if status >= 500 or status in RETRYABLE_STATUS:
            if status >= 500:
                self.stats.server_errors += 1
            raise _Retry(DriftServerError(f"{label} answered {status}{self._detail(response)}", status=status,
                                          endpoint=endpoint))
        if endpoint == "token" and status in (400, 401, 403):
            raise DriftAuthError(
                f"the token endpoint refused the credentials ({status}{oauth_error_code(response)}); the refresh "
                "token may have been rotated or revoked: run `drift-pipeline auth exchange --code CODE`",
                status=status, endpoint=endpoint)
        if status == 403 and endpoint in ENDPOINT_SCOPES:
            scope = ENDPOINT_SCOPES[endpoint]
            raise DriftMissingScope(f"{label} answered 403{self._detail(response)}: the app lacks the optional "
                                    f"{scope} scope, so this stream is skipped (grant {scope} to the app and "
                                    "re-install it to read it)", scope=scope, status=403, endpoint=endpoint)
        if status in (401, 403):
            what = "refused the credentials even after a refresh" if status == 401 else "is not allowed (missing scope?)"
            raise DriftAuthError(f"{label} {what} ({status}{self._detail(response)}); the app needs "
                                 "conversation_read, contact_read and user_read", status=status, endpoint=endpoint)
        if status == 404:
            raise DriftNotFound(f"{label} answered 404{self._detail(response)}", status=404, endpoint=endpoint)
        if status >= 400:
            raise DriftBadRequest(f"{label} answered {status}{self._detail(response)}", status=status,
                                  endpoint=endpoint)
        if status >= 300:
            raise DriftBadResponse(f"{label} answered an unexpected redirect ({status})", status=status,
                                   endpoint=endpoint)
        if expect == "text":
            return transcript_text(response)
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            self.stats.malformed_responses += 1
            raise _Retry(DriftBadResponse(f"{label} answered malformed JSON", status=status,
                                          endpoint=endpoint)) from None
        if not isinstance(body, dict) and expect != "any_json":
            self.stats.malformed_responses += 1
            raise _Retry(DriftBadResponse(f"{label} answered JSON that is not an object", status=status,
                                          endpoint=endpoint))
        return body

    def _detail(self, response: httpx.Response) -> str:
        """The reason in Drift's error body, scrubbed and short: `{"errors": [{type, message}]}`
        or `{"error": {type, message}}` (both are in use), or an OAuth `{"error": "code"}`."""
        text = error_reason(response.content)
        return f": {self.redact(text)[:200]}" if text else ""

    def redact(self, text: str) -> str:
        """`text` with every credential this client knows replaced."""
        for secret in sorted(self.auth.secrets(), key=len, reverse=True):
            if secret and len(secret) >= 4:
                text = text.replace(secret, _REDACTED)
        return text


# -- plain helpers ---------------------------------------------------------------------------
class _StripQueryFilter(logging.Filter):
    """httpx logs every request URL at INFO; drop the query (emails, cursors) from those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                                for arg in record.args)
        return True


def _quiet_httpx_urls() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _StripQueryFilter) for existing in logger.filters):
        logger.addFilter(_StripQueryFilter())


def _path_of(target: str) -> str:
    # Labels for logs and errors: the path only, never the query (cursors, emails).
    return httpx.URL(target).path if is_url(target) else target.split("?", 1)[0]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
