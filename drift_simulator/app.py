"""The simulated Drift HTTP API (a Starlette app) with its controls: faults, stats, rate limit, OAuth.

Every API request goes through the same gate, in this order: stats (in flight), optional
latency, injected fault, authentication, rate limit, handler; the rate-limit headers are added
to every API answer. Control endpoints under `/_sim/` skip the gate.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from email.utils import formatdate
from urllib.parse import parse_qs, urlencode

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .marketing import ACCOUNTS_MAX_SIZE, MEETINGS_DEFAULT_LIMIT, MEETINGS_MAX_LIMIT
from .world import STATUS_IDS, DriftWorld, SimulatorConfig

# How many API requests `SimulatorStats.request_log` keeps (tests and benchmarks count calls per URL).
REQUEST_LOG_SIZE = 100_000
FAULT_KINDS = ("429", "500", "503", "reset", "malformed", "slow", "expire_token")
ROUTE_NAMES = ("list", "list_older", "detail", "messages", "transcript", "users", "users_by_id", "contact",
               "contact_lookup", "reports", "meetings", "playbooks", "accounts", "account", "token", "unrouted")
# The OAuth scope each route needs (drift-api.md); a workspace whose app lacks it answers 403
# for that route only (`SimulatorConfig.missing_scopes`).
ROUTE_SCOPES = {
    "list": "conversation_read", "list_older": "conversation_read", "detail": "conversation_read",
    "messages": "conversation_read", "transcript": "conversation_read", "reports": "conversation_read",
    "users": "user_read", "users_by_id": "user_read", "meetings": "user_read",
    "contact": "contact_read", "contact_lookup": "contact_read",
    "playbooks": "playbook_read", "accounts": "account_read", "account": "account_read",
}
OLDER_LIST_LIMIT = 50  # `GET /conversations`, the older listing, pages at most 50 (as legacy /list did)
USERS_BY_ID_LIMIT = 20  # `GET /users?userId=...` answers at most 20 users a call
REPORT_METRICS = ("firstCloseAt", "lastCloseAt", "timeToCloseMillis", "closeCount", "reopenCount",
                  "firstAgentMessageAt", "timeToAgentResponseMillis", "relatedPlaybookId", "createdAt", "updatedAt")
# Drift: "If a metric is not present, will return as "NaN"" (conversation-reporting docs).
REPORT_ABSENT = "NaN"

# Set in the ASGI scope by the server's connection protocol: a callable that drops the TCP
# connection without any HTTP answer (see server.py).
RESET_EXTENSION = "drift_sim.reset_connection"


class SimulatedConnectionReset(httpx.ReadError):
    """Raised by the app for a "reset" fault when no server-side socket is available to drop.

    Under httpx.ASGITransport the client therefore sees a transport error, as over the network.
    """


def _error(status: int, type_: str, message: str, param: str | None = None,
           headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    error = {"type": type_, "message": message}
    if param is not None:
        error["param"] = param
    return JSONResponse({**extra, "errors": [error]}, status_code=status, headers=headers)


# ---------------------------------------------------------------------- stats
class SimulatorStats:
    """Request counters; thread-safe (the server runs in its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests_total = 0
            self.by_route: Counter = Counter()
            self.by_status: Counter = Counter()
            self.faults: Counter = Counter()  # injected faults served, by kind
            self.peak_in_flight = 0
            self.in_flight = getattr(self, "in_flight", 0)  # requests running right now stay counted
            self.responses_429 = 0
            self.resets = 0
            # The newest requests in order: (route, method, path?query, status; None: a reset).
            self.requests: deque = deque(maxlen=REQUEST_LOG_SIZE)

    def enter(self, route: str) -> None:
        with self._lock:
            self.requests_total += 1
            self.by_route[route] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self, status: int | None) -> None:
        with self._lock:
            self.in_flight -= 1
            if status is None:
                self.resets += 1
            else:
                self.by_status[status] += 1
                if status == 429:
                    self.responses_429 += 1

    def record(self, route: str, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.requests.append((route, method, path, status))

    def request_log(self) -> list[tuple[str, str, str, int | None]]:
        """The newest `REQUEST_LOG_SIZE` API requests, oldest first (tests count calls per URL)."""
        with self._lock:
            return list(self.requests)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests_total": self.requests_total, "by_route": dict(self.by_route),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "faults": dict(self.faults), "peak_in_flight": self.peak_in_flight,
                "in_flight": self.in_flight, "responses_429": self.responses_429, "resets": self.resets,
            }


# ---------------------------------------------------------------------- faults
@dataclass
class _Fault:
    kind: str
    remaining: int
    path: str | None
    params: dict = field(default_factory=dict)


class FaultInjector:
    """Queued faults, consumed first-in first-out by the next matching API requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Fault] = deque()

    def inject(self, kind: str, count: int = 1, *, path: str | None = None, **params: Any) -> None:
        """Queues `count` faults of `kind` for requests whose path starts with `path` (any API path if None).

        kinds: "429" (retry_after=1), "500", "503", "reset", "malformed", "slow" (delay=1.0),
        "expire_token" (the request's OAuth token dies: revoked early). The token endpoint is
        only faulted when `path` names it. `skip=N` lets N matching requests pass first, so a
        fault can strike in the middle of a run (e.g. tokens revoked twice in one sync).
        """
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._queue.append(_Fault(kind, int(count), path, dict(params)))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._queue)

    def take(self, path: str, *, oauth_token: bool) -> _Fault | None:
        """The fault this request should suffer, if any (consumes one)."""
        with self._lock:
            for fault in self._queue:
                if fault.path is None:
                    if path.startswith("/oauth2/"):
                        continue
                elif not path.startswith(fault.path):
                    continue
                if fault.kind == "expire_token" and not oauth_token:
                    continue
                if fault.params.get("skip", 0) > 0:
                    fault.params["skip"] -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
            return None


# ---------------------------------------------------------------------- rate limit
class LeakyBucket:
    """Drift-style leaky bucket: drains `per_minute / 60` requests per second, holds ~10 s of burst.

    Uses the monotonic clock (real time), independent of the world's virtual clock.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.configure(per_minute)

    def configure(self, per_minute: int) -> None:
        with self._lock:
            self.per_minute = int(per_minute)
            self.rate = self.per_minute / 60.0
            self.capacity = max(1.0, self.per_minute / 6.0)
            self.level = 0.0
            self._last = self._clock()

    def _drain(self) -> None:
        now = self._clock()
        self.level = max(0.0, self.level - (now - self._last) * self.rate)
        self._last = now

    def admit(self) -> tuple[bool, dict[str, str]]:
        """(admitted, headers). Headers carry the state after this request."""
        with self._lock:
            if self.per_minute <= 0:
                return True, {}
            self._drain()
            admitted = self.level + 1.0 <= self.capacity + 1e-9
            if admitted:
                self.level += 1.0
            headers = self._headers()
            if not admitted:
                wait = (self.level + 1.0 - self.capacity) / self.rate
                headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return admitted, headers

    def peek(self) -> dict[str, str]:
        with self._lock:
            if self.per_minute <= 0:
                return {}
            self._drain()
            return self._headers()

    def _headers(self) -> dict[str, str]:
        empty_at = time.time() + self.level / self.rate
        return {
            "X-RateLimit-Limit": str(self.per_minute),
            "X-RateLimit-Remaining": str(max(0, math.floor(self.capacity - self.level))),
            "X-RateLimit-Reset": str(math.ceil(empty_at)),
        }


# ---------------------------------------------------------------------- OAuth
class _TokenStore:
    def __init__(self, config: SimulatorConfig) -> None:
        self._lock = threading.Lock()
        self.config = config
        self._codes = {config.authorization_code}
        self._access: dict[str, float] = {}  # token -> monotonic expiry
        self._refresh: set[str] = set()

    def issue_code(self) -> str:
        code = "sim-code-" + secrets.token_urlsafe(12)
        with self._lock:
            self._codes.add(code)
        return code

    def use_code(self, code: str) -> bool:
        with self._lock:
            if code in self._codes:
                self._codes.discard(code)
                return True
            return False

    def issued(self, code: str | None, refresh_token: str | None) -> bool:
        """Whether this workspace issued the code or refresh token (several orgs on one host)."""
        with self._lock:
            return (code is not None and code in self._codes) or \
                (refresh_token is not None and refresh_token in self._refresh)

    def rotate(self, refresh_token: str) -> bool:
        with self._lock:
            if refresh_token in self._refresh:
                self._refresh.discard(refresh_token)
                return True
            return False

    def issue(self) -> dict:
        access, refresh = "sim-at-" + secrets.token_urlsafe(24), "sim-rt-" + secrets.token_urlsafe(24)
        ttl = self.config.access_token_ttl_seconds
        with self._lock:
            self._access[access] = time.monotonic() + ttl if ttl > 0 else float("inf")
            self._refresh.add(refresh)
        if self.config.token_answer == "camel":  # the spelling Drift's sample app reads
            return {"accessToken": access, "refreshToken": refresh, "tokenType": "bearer",
                    "expiresIn": ttl, "orgId": self.config.org_id}
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
                "expires_in": ttl, "orgId": self.config.org_id}

    def kind(self, token: str | None) -> str | None:
        """"static", "oauth" (valid access token), "expired" (issued but no longer valid) or None."""
        if token is None:
            return None
        if secrets.compare_digest(token, self.config.static_access_token):
            return "static"
        with self._lock:
            expiry = self._access.get(token)
        if expiry is None:
            return None
        return "oauth" if time.monotonic() < expiry else "expired"

    def expire(self, token: str | None = None) -> None:
        with self._lock:
            for key in [token] if token is not None else list(self._access):
                if key in self._access:
                    self._access[key] = float("-inf")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _encode_cursor(*parts: int) -> str:
    raw = ":".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, parts: int) -> tuple[int, ...]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        values = tuple(int(v) for v in raw.split(":"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("invalid cursor") from exc
    if len(values) != parts:
        raise ValueError("invalid cursor")
    return values


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class _ListQuery:
    """A conversation listing's query, read from the request."""

    limit: int
    statuses: set[str] | None
    raw_statuses: list[str]
    cursor: str | None
    after: tuple[int, int] | None


class Simulator:
    """The Drift API as an ASGI app (`app`) over a `DriftWorld`, plus test controls."""

    def __init__(self, config: SimulatorConfig | None = None, world: DriftWorld | None = None,
                 *, latency_seconds: float = 0.0) -> None:
        if world is not None and config is None:
            config = world.config
        self.config = config or SimulatorConfig()
        self.world = world if world is not None else DriftWorld(self.config)
        self.faults = FaultInjector()
        self.stats = SimulatorStats()
        self.latency_seconds = latency_seconds
        self.tokens = _TokenStore(self.config)
        self.bucket = LeakyBucket(self.config.rate_limit_per_minute)
        self.reports_bucket = LeakyBucket(self.config.reports_rate_limit_per_minute)
        self.app = Starlette(routes=self._routes(), exception_handlers={HTTPException: self._http_error})

    # -------------------------------------------------------------- controls
    def set_rate_limit(self, per_minute: int) -> None:
        """Changes the API limit (requests/minute; <= 0 disables it) and empties the bucket."""
        self.bucket.configure(per_minute)

    def expire_access_tokens(self) -> None:
        """Every OAuth access token issued so far now gets 401; refresh tokens and the static token still work."""
        self.tokens.expire()

    def issue_authorization_code(self) -> str:
        """A fresh one-time code for grant_type=authorization_code (besides config.authorization_code)."""
        return self.tokens.issue_code()

    def issue_tokens(self) -> dict:
        """A token answer as /oauth2/token would give it, without an HTTP round trip."""
        return self.tokens.issue()

    # -------------------------------------------------------------- routing
    def _routes(self) -> list[Route]:
        api = self._api
        return [
            Route("/oauth2/token", self._gated("token", self._token, auth=False, bucket=None), methods=["POST"]),
            Route("/conversations/list", api("list", self._list), methods=["GET"]),
            Route("/conversations", api("list_older", self._list_older), methods=["GET"]),
            Route("/conversations/{conversation_id:int}", api("detail", self._detail), methods=["GET"]),
            Route("/conversations/{conversation_id:int}/messages", api("messages", self._messages), methods=["GET"]),
            Route("/conversations/{conversation_id:int}/transcript", api("transcript", self._transcript),
                  methods=["GET"]),
            Route("/users/list", api("users", self._users), methods=["GET"]),
            Route("/users", api("users_by_id", self._users_by_id), methods=["GET"]),
            Route("/contacts/{contact_id:int}", api("contact", self._contact), methods=["GET"]),
            Route("/contacts", api("contact_lookup", self._contact_lookup), methods=["GET"]),
            Route("/users/meetings/org", api("meetings", self._meetings), methods=["GET"]),
            Route("/playbooks/list", api("playbooks", self._playbooks), methods=["GET"]),
            Route("/accounts", api("accounts", self._accounts), methods=["GET"]),
            Route("/accounts/{account_id}", api("account", self._account), methods=["GET"]),
            Route("/reports/conversations", self._gated("reports", self._reports, auth=True, bucket="reports"),
                  methods=["POST"]),
            Route("/_sim/health", self._sim_health, methods=["GET"]),
            Route("/_sim/stats", self._sim_stats, methods=["GET"]),
            Route("/_sim/advance", self._sim_advance, methods=["POST"]),
            Route("/_sim/faults", self._sim_faults, methods=["POST", "DELETE"]),
            Route("/_sim/rate-limit", self._sim_rate_limit, methods=["POST"]),
            Route("/_sim/expire-tokens", self._sim_expire_tokens, methods=["POST"]),
        ]

    def _api(self, name: str, handler: Handler) -> Handler:
        return self._gated(name, handler, auth=True, bucket="api")

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        type_ = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
        if request.scope.get("endpoint") is None and not request.url.path.startswith("/_sim/"):
            # A path no route serves (a client calling an endpoint the simulator lacks) still
            # costs the client a call: count it, so benchmarks see every request.
            self.stats.enter("unrouted")
            self.stats.leave(status)
        return _error(status, type_, str(getattr(exc, "detail", "error")))

    def _gated(self, name: str, handler: Handler, *, auth: bool, bucket: str | None) -> Handler:
        async def endpoint(request: Request) -> Response:
            self.stats.enter(name)
            status: int | None = None
            try:
                response = await self._handle(request, handler, auth=auth, bucket=bucket,
                                              scope=ROUTE_SCOPES.get(name))
                status = None if isinstance(response, _NoResponse) else response.status_code
                return response
            finally:
                self.stats.leave(status)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                self.stats.record(name, request.method, target, status)
        return endpoint

    async def _handle(self, request: Request, handler: Handler, *, auth: bool, bucket: str | None,
                      scope: str | None = None) -> Response:
        limiter = {"api": self.bucket, "reports": self.reports_bucket}.get(bucket or "")
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        token = _bearer(request) if auth else None
        token_kind = self.tokens.kind(token) if auth else None
        fault = self.faults.take(request.url.path, oauth_token=token_kind == "oauth")
        if fault is not None:
            self.stats.count_fault(fault.kind)
            if fault.kind == "slow":
                await asyncio.sleep(float(fault.params.get("delay", 1.0)))
            elif fault.kind == "expire_token":
                self.tokens.expire(token)
                token_kind = "expired"
            else:
                return self._fault_response(request, fault, limiter)
        headers = limiter.peek() if limiter is not None else {}
        if auth and token_kind not in ("static", "oauth"):
            message = ("Access token expired or revoked" if token_kind == "expired"
                       else "Missing or invalid access token")
            return _error(401, "authentication_error", message, headers=headers)
        if limiter is not None:
            admitted, headers = limiter.admit()
            if not admitted:
                return _error(429, "rate_limit_exceeded", "Too many requests: rate limit exceeded", headers=headers)
        if scope is not None and scope in self.config.missing_scopes:
            response = _error(403, "forbidden", f"The access token does not have the {scope} scope")
        else:
            try:
                response = await handler(request)
            except HTTPException:
                raise
            except KeyError:
                response = _error(404, "not_found", "Resource not found")
        response.headers.update(headers)
        if auth:
            # Drift's clock, as every HTTP server states it: the pipeline reads the window of
            # meetings Drift serves from it (the world's clock, not the machine's).
            response.headers["Date"] = formatdate(self.world.now_ms / 1000, usegmt=True)
        return response

    def _fault_response(self, request: Request, fault: _Fault, limiter: LeakyBucket | None) -> Response:
        headers = limiter.peek() if limiter is not None else {}
        if fault.kind == "429":
            retry_after = max(1, math.ceil(float(fault.params.get("retry_after", 1))))
            return _error(429, "rate_limit_exceeded", "Too many requests: rate limit exceeded",
                          headers={**headers, "X-RateLimit-Remaining": "0", "Retry-After": str(retry_after)})
        if fault.kind in ("500", "503"):
            message = "Internal server error" if fault.kind == "500" else "Service temporarily unavailable"
            return _error(int(fault.kind), "server_error", message, headers=headers)
        if fault.kind == "malformed":
            return Response(b'{"data": [{"id": 3100000001, "status": "open", "contactId": 54', status_code=200,
                            media_type="application/json", headers=headers)
        # "reset": drop the TCP connection with no HTTP answer at all.
        reset = request.scope.get("extensions", {}).get(RESET_EXTENSION)
        if reset is not None:
            reset()
            return _NoResponse()
        raise SimulatedConnectionReset("Connection reset by peer (simulated)")

    # -------------------------------------------------------------- API handlers
    async def _token(self, request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                form = {k: str(v) for k, v in json.loads(body or "{}").items()}
            except (ValueError, AttributeError):
                return _error(400, "invalid_request", "Malformed request body", error="invalid_request")
        else:
            form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        config = self.config
        client_ok = (secrets.compare_digest(form.get("client_id", ""), config.client_id)
                     and secrets.compare_digest(form.get("client_secret", ""), config.client_secret))
        if not client_ok:
            return _error(401, "authentication_error", "Invalid client credentials", error="invalid_client")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if not self.tokens.use_code(form.get("code", "")):
                return _error(400, "invalid_grant", "Authorization code is invalid or was already used",
                              param="code", error="invalid_grant")
        elif grant == "refresh_token":
            if not self.tokens.rotate(form.get("refresh_token", "")):
                return _error(400, "invalid_grant", "Refresh token is invalid, expired or was already used",
                              param="refresh_token", error="invalid_grant")
        else:
            return _error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token",
                          param="grant_type", error="unsupported_grant_type")
        return JSONResponse(self.tokens.issue(), headers={"Cache-Control": "no-store"})

    def _list_query(self, request: Request, max_limit: int) -> _ListQuery | Response:
        """The listing's query (limit, statusId, cursor) read and checked, or a 400 answer."""
        params = request.query_params
        try:
            limit = int(params.get("limit", "25"))
        except ValueError:
            return _error(400, "validation_error", "limit must be an integer", param="limit")
        statuses: set[str] | None = None
        raw_statuses = params.getlist("statusId")
        if raw_statuses:
            try:
                statuses = {STATUS_IDS[int(s)] for s in raw_statuses}
            except (ValueError, KeyError):
                return _error(400, "validation_error", "statusId must be 1 (open), 2 (closed) or 3 (pending)",
                              param="statusId")
        cursor = params.get("next") or params.get("page_token")
        after = None
        if cursor:
            try:
                after = _decode_cursor(cursor, 2)
            except ValueError:
                return _error(400, "validation_error", "Invalid pagination token", param="next")
        return _ListQuery(max(1, min(max_limit, limit)), statuses, raw_statuses, cursor, after)

    @staticmethod
    def _older_page(items: list[dict], next_key: tuple[int, int] | None) -> JSONResponse:
        """The older docs' page: the cursor in `pagination`, present only when there is more."""
        body: dict[str, Any] = {"data": items}
        if next_key is not None:
            body["pagination"] = {"more": True, "next": _encode_cursor(*next_key)}
        return JSONResponse(body)

    async def _list_older(self, request: Request) -> Response:
        """`GET /conversations`: the older listing, always in the older shape (50 a page at most)."""
        query = self._list_query(request, OLDER_LIST_LIMIT)
        if isinstance(query, Response):
            return query
        return self._older_page(*self.world.list_page(query.limit, query.statuses, query.after))

    async def _list(self, request: Request) -> Response:
        query = self._list_query(request, 50 if self.config.legacy else 100)
        if isinstance(query, Response):
            return query
        limit, raw_statuses, cursor = query.limit, query.raw_statuses, query.cursor
        items, next_key = self.world.list_page(limit, query.statuses, query.after)
        if self.config.legacy:
            return self._older_page(items, next_key)
        body: dict[str, Any] = {"data": items}
        # Current docs: the next page as an absolute URL on Drift's public host, with page_token.
        link = f"{self.config.link_host.rstrip('/')}/conversations/list"
        kept = [("limit", str(limit))] + [("statusId", s) for s in raw_statuses]
        body["links"] = {"self": link + "?" + urlencode(kept + ([("page_token", cursor)] if cursor else []))}
        if next_key is not None:
            body["links"]["next"] = link + "?" + urlencode(kept + [("page_token", _encode_cursor(*next_key))])
        return JSONResponse(body)

    async def _detail(self, request: Request) -> Response:
        cid = request.path_params["conversation_id"]
        with self.world.lock:
            conversation = self.world.conversations[cid]
            data = json.loads(json.dumps(conversation))
        return JSONResponse({"data": data})

    async def _messages(self, request: Request) -> Response:
        cid = request.path_params["conversation_id"]
        if cid not in self.world.conversations:
            raise KeyError(cid)
        cursor = request.query_params.get("next") or request.query_params.get("page_token")
        after = None
        if cursor:
            try:
                after = _decode_cursor(cursor, 1)[0]
            except ValueError:
                return _error(400, "validation_error", "Invalid pagination token", param="next")
        try:
            page, next_id = self.world.messages_page(cid, after)
        except KeyError:
            return _error(400, "validation_error", "Invalid pagination token", param="next")
        body: dict[str, Any] = {"data": {"messages": page}}
        if next_id is not None:
            body["pagination"] = {"more": True, "next": _encode_cursor(next_id)}
        return JSONResponse(body)

    async def _transcript(self, request: Request) -> Response:
        return PlainTextResponse(self.world.transcript(request.path_params["conversation_id"]))

    async def _users(self, request: Request) -> Response:
        with self.world.lock:
            return JSONResponse({"data": self.world.users})

    async def _users_by_id(self, request: Request) -> Response:
        """`GET /users?userId=A&userId=B`: a map of user id -> user, for at most 20 ids; unknown ids
        are left out. Drift's docs show only the form with ids; without any, the simulator answers
        every user of the org in the same map (choice)."""
        raw_ids = request.query_params.getlist("userId")
        if len(raw_ids) > USERS_BY_ID_LIMIT:
            return _error(400, "validation_error", f"at most {USERS_BY_ID_LIMIT} userId values per call",
                          param="userId")
        try:
            wanted = {int(v) for v in raw_ids}
        except ValueError:
            return _error(400, "validation_error", "userId must be an integer", param="userId")
        with self.world.lock:
            return JSONResponse({"data": {str(u["id"]): u for u in self.world.users
                                          if not wanted or u["id"] in wanted}})

    async def _contact(self, request: Request) -> Response:
        with self.world.lock:
            return JSONResponse({"data": self.world.contacts[request.path_params["contact_id"]]})

    async def _contact_lookup(self, request: Request) -> Response:
        email = request.query_params.get("email")
        if not email:
            return _error(400, "validation_error", "email is required", param="email")
        contact = self.world.contact_by_email(email)
        with self.world.lock:
            return JSONResponse({"data": [contact] if contact is not None else []})

    async def _reports(self, request: Request) -> Response:
        try:
            query = json.loads(await request.body() or b"{}")
            if not isinstance(query, dict):
                raise ValueError
        except ValueError:
            return _error(400, "validation_error", "Body must be a JSON object")
        metrics = query.get("metrics") or ["firstCloseAt", "timeToCloseMillis"]
        unknown = [m for m in metrics if m not in REPORT_METRICS]
        if unknown:
            return _error(400, "validation_error", f"Unknown metric {unknown[0]!r}", param="metrics")
        bounds: dict[str, tuple[int, int]] = {}
        for flt in query.get("filters") or []:
            try:
                prop, operation, values = flt["property"], str(flt.get("operation", "")).upper(), flt["values"]
                if prop not in ("updatedAt", "createdAt") or operation != "BETWEEN" or len(values) != 2:
                    raise ValueError
                bounds[prop] = (int(values[0]), int(values[1]))
            except (KeyError, TypeError, ValueError):
                return _error(400, "validation_error", "filters take {property: updatedAt|createdAt, "
                              "operation: BETWEEN, values: [startMs, endMs]}", param="filters")
        rows = []
        with self.world.lock:
            for cid, conversation in self.world.conversations.items():
                if all(low <= conversation[prop] <= high for prop, (low, high) in bounds.items()):
                    values = self.world.conversation_metrics(cid)
                    rows.append({"conversationId": cid, "metrics": [
                        REPORT_ABSENT if values[m] is None else values[m] for m in metrics]})
        return JSONResponse({"count": len(rows), "data": rows})

    async def _meetings(self, request: Request) -> Response:
        """`GET /users/meetings/org?min_start_time=MS&max_start_time=MS[&limit=N]`: meetings whose
        slot starts in the range and within the last 30 days of the clock."""
        params = request.query_params
        bounds = {}
        for name in ("min_start_time", "max_start_time"):
            try:
                bounds[name] = int(params[name])
            except KeyError:
                return _error(400, "validation_error", f"{name} is required (epoch milliseconds)", param=name)
            except ValueError:
                return _error(400, "validation_error", f"{name} must be epoch milliseconds", param=name)
        try:
            limit = int(params.get("limit", MEETINGS_DEFAULT_LIMIT))
            if not 0 <= limit <= MEETINGS_MAX_LIMIT:
                raise ValueError
        except ValueError:
            return _error(400, "validation_error", f"limit must be 0-{MEETINGS_MAX_LIMIT}", param="limit")
        return JSONResponse({"data": self.world.served_meetings(bounds["min_start_time"], bounds["max_start_time"],
                                                                limit)})

    async def _playbooks(self, request: Request) -> Response:
        # A bare list, no `data` wrapper (Drift's docs): enabled playbooks only.
        return JSONResponse(self.world.listed_playbooks())

    async def _accounts(self, request: Request) -> Response:
        """`GET /accounts?index=I&size=S`: `{"data": {"accounts", "total", "next"}}`, `next` the
        path of the following page (as Drift's sample code follows it; an absolute URL on the
        link host in the legacy shapes), absent on the last page."""
        try:
            index = int(request.query_params.get("index", "0"))
            size = int(request.query_params.get("size", "25"))
            if index < 0 or size < 1:
                raise ValueError
        except ValueError:
            return _error(400, "validation_error", "index and size must be non-negative integers", param="index")
        size = min(size, ACCOUNTS_MAX_SIZE)
        accounts, total = self.world.accounts_page(index, size)
        data: dict[str, Any] = {"accounts": accounts, "total": total}
        if index + size < total:
            path = "/accounts?" + urlencode({"index": index + size, "size": size})
            data["next"] = self.config.link_host.rstrip("/") + path if self.config.legacy else path
        return JSONResponse({"data": data})

    async def _account(self, request: Request) -> Response:
        with self.world.lock:
            return JSONResponse({"data": self.world.accounts[request.path_params["account_id"]]})

    # -------------------------------------------------------------- control endpoints
    async def _sim_health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "orgId": self.world.org_id, "nowMs": self.world.now_ms})

    async def _sim_stats(self, request: Request) -> Response:
        return JSONResponse({**self.stats.snapshot(), "nowMs": self.world.now_ms,
                             "conversations": len(self.world.conversations)})

    async def _sim_advance(self, request: Request) -> Response:
        try:
            minutes = float(request.query_params.get("minutes", "1"))
            if not math.isfinite(minutes) or minutes < 0:
                raise ValueError
        except ValueError:
            return _error(400, "validation_error", "minutes must be a number >= 0", param="minutes")
        payloads = await asyncio.to_thread(self.world.advance, minutes)
        deliver = request.query_params.get("deliver")
        failures = 0
        if deliver:
            async with httpx.AsyncClient(timeout=10) as client:
                for payload in payloads:
                    try:
                        answer = await client.post(deliver, json=payload,
                                                   headers=self.config.webhook_headers())
                        failures += answer.status_code >= 300
                    except httpx.HTTPError:
                        failures += 1
        return JSONResponse(payloads, headers={"X-Sim-Delivery-Failures": str(failures)} if deliver else None)

    async def _sim_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse({"pending": 0})
        try:
            spec = json.loads(await request.body())
            kind = str(spec.pop("kind"))
            count = int(spec.pop("count", 1))
            path = spec.pop("path", None)
            self.faults.inject(kind, count, path=path, **spec)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _error(400, "validation_error", f"bad fault spec: {exc}")
        return JSONResponse({"pending": self.faults.pending})

    async def _sim_rate_limit(self, request: Request) -> Response:
        try:
            per_minute = int(request.query_params["per_minute"])
        except (KeyError, ValueError):
            return _error(400, "validation_error", "per_minute must be an integer", param="per_minute")
        self.set_rate_limit(per_minute)
        return JSONResponse({"per_minute": per_minute})

    async def _sim_expire_tokens(self, request: Request) -> Response:
        self.expire_access_tokens()
        return JSONResponse({"expired": True})


class _NoResponse(Response):
    """Sends nothing: the connection was already dropped."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None
