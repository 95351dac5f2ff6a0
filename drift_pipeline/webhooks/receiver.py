"""The webhook receiver: `POST /webhooks` and `GET /healthz` (`webhooks serve` in docs/reference.md).

It only authenticates, validates, deduplicates and durably drops events into the inbox; the
apply step does the work later. It never calls the Drift API, so Drift gets its 2xx fast.

Verification (drift-api.md, Webhooks): Drift presents the app's verification token in the
`X-Verification-Token` header and/or the body's `token` (newer deliveries only in the header).
An event is authenticated when a presented token matches (constant-time compare).

Answers of `POST /webhooks`:
- 200 `{"status": "accepted", "event_id"}` once the event is on disk;
  200 `{"status": "duplicate", "event_id"}` for a redelivery (so Drift stops retrying);
  200 `{"status": "accepted", "event_id", "repeat": true}` for a status or participant event
  without `changedAt` whose bytes were seen before: it may be a genuine new change (closed
  again after a reopen), so it is on disk again and the apply step re-fetches its conversation.
- 200 `{"status": "quarantined", "event_id", "reason"}`: authenticated, but not a usable Drift
  event shape. It is kept in `quarantine/` with a `.reason` file (replay it with
  `drift-pipeline replay event FILE` once the cause is fixed): an authenticated event is never
  lost for its shape, and a 4xx would only make Drift retry it forever.
- 400 not JSON, 401 no presented token matches, 413 body over 1 MiB, 503 the inbox cannot be
  written (Drift retries). Nothing is written for any of these.
Error bodies are `{"error": "<one line>"}` and never repeat the request body or the token.

`POST /widget-events` takes the events a site forwards from the Drift widget (docs/widget.md):
403 a browser Origin not in DRIFT_WIDGET_ORIGINS, 413 body over 16 KiB, 401 missing or wrong
`X-Drift-Pipeline-Signature`, 400 not JSON, 422 not a widget event; otherwise 200 with
`accepted` or `duplicate`, the id and how many fields were dropped. 404 while
DRIFT_WIDGET_SECRET is unset. `OPTIONS` answers the CORS preflight of allowed origins.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from typing import Any, Mapping

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from drift_pipeline.settings import Settings
from drift_pipeline.pii import hash_pii
from drift_pipeline.webhooks.events import InvalidEvent, event_id, hash_meeting_notes, parse_json, validate_event
from drift_pipeline.webhooks.inbox_files import inbox_record, quarantine_record
from drift_pipeline.webhooks.inbox_writer import InboxUnavailable, InboxWriter
from drift_pipeline.webhooks.widget import (
    MAX_WIDGET_BODY_BYTES,
    SIGNATURE_HEADER,
    InvalidWidgetEvent,
    filter_event,
    origin_allowed,
    signature_matches,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
VERIFICATION_HEADER = "X-Verification-Token"
# Quarantined receipts are named by event id, so a redelivery finds its earlier copy.
QUARANTINE_PREFIX = "received-"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


class WebhookConfigError(RuntimeError):
    """The receiver cannot start with this configuration; the message says what to set."""


class BodyTooLarge(Exception):
    pass


async def read_bounded_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (BodyTooLarge) as soon as it passes `limit` bytes.

    Checks Content-Length first, then counts what actually arrives, so a chunked or lying
    client cannot make the receiver buffer more than `limit` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            pass  # a malformed header: the byte count below still bounds the read
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def presented_tokens(headers: Mapping[str, str], payload: Any) -> list[str]:
    """The verification tokens a delivery presents: the `X-Verification-Token` header and the
    body's `token`, whichever are there (non-empty strings only)."""
    body_token = payload.get("token") if isinstance(payload, dict) else None
    return [token for token in (headers.get(VERIFICATION_HEADER), body_token)
            if isinstance(token, str) and token]


def token_matches(presented: list[str], expected: bytes) -> bool:
    """True when any presented token equals `expected`, compared in constant time.

    Every candidate is compared (no early exit), so the time taken does not tell which of
    header or body was right.
    """
    matched = False
    for token in presented:
        matched |= hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected)
    return matched


def _error(status_code: int, message: str) -> JSONResponse:
    response = JSONResponse({"error": message}, status_code=status_code)
    response.reason = message  # for the request's log line
    return response


class _Receiver:
    """The app's state: the expected token and the inbox writer."""

    def __init__(self, settings: Settings, writer: InboxWriter) -> None:
        self.settings = settings
        self.writer = writer
        self._expected = settings.webhook_token.encode("utf-8")
        self._salt: str | None = None  # read on the first meeting with notes
        self._start_lock = threading.Lock()
        self._shut_down = False

    def _pii_salt(self) -> str:
        if self._salt is None:
            self._salt = self.settings.secret("pii_salt")
        return self._salt

    def ensure_writer(self) -> None:
        # Lifespan starts the writer; this covers ASGI servers or test transports without one.
        if self.writer.running or self._shut_down:
            return
        with self._start_lock:
            if not self.writer.running:
                self.settings.ensure_dirs()
                self.writer.start()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        self.ensure_writer()
        try:
            yield
        finally:
            self._shut_down = True
            self.writer.close()

    async def webhooks(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        response, event_type, identity = await self._handle(request)
        # One line per request: never the body or the token (error reasons never quote them).
        reason = f" error={response.reason!r}" if getattr(response, "reason", None) else ""
        repeat = " repeat" if getattr(response, "repeat", False) else ""
        log.info("POST /webhooks %d type=%s event_id=%s%s %.1fms%s", response.status_code,
                 event_type or "-", identity or "-", repeat, (time.perf_counter() - started) * 1000,
                 reason)
        return response

    async def _handle(self, request: Request) -> tuple[JSONResponse, str | None, str | None]:
        try:
            body = await read_bounded_body(request)
        except BodyTooLarge:
            return _error(413, f"body is larger than {MAX_BODY_BYTES} bytes"), None, None
        except ClientDisconnect:
            return _error(400, "client disconnected before sending the whole body"), None, None
        try:
            payload = parse_json(body)
        except InvalidEvent as exc:
            return _error(400, exc.reason), None, None
        if not token_matches(presented_tokens(request.headers, payload), self._expected):
            return _error(401, "missing or wrong verification token"), None, None
        # Meeting notes are free text about a person: hashed before anything is written.
        payload = hash_meeting_notes(payload, lambda notes: hash_pii(notes, self._pii_salt()))
        try:
            event = validate_event(payload)
        except InvalidEvent as exc:
            return await self._quarantine(payload, exc.reason)
        event_type = event.type if event.known else "unknown"
        self.ensure_writer()
        try:
            result = await self.writer.submit(payload, event.event_id,
                                              canonical=event.canonical,
                                              repeatable=event.repeatable)
        except InboxUnavailable as exc:
            log.error("webhook not stored, Drift will retry: %s", exc)
            return _error(503, "the inbox cannot be written now; retry later"), event_type, \
                event.event_id
        answer = {"status": result.status, "event_id": result.event_id}
        if result.repeat:
            answer["repeat"] = True
        response = JSONResponse(answer)
        response.repeat = result.repeat  # for the request's log line
        return response, event_type, event.event_id

    async def _quarantine(self, payload: Any,
                          reason: str) -> tuple[JSONResponse, str | None, str | None]:
        """Keep an authenticated event whose shape is unusable; 2xx so Drift stops retrying."""
        try:
            identity = event_id(payload)
        except ValueError:  # not serializable back to strict JSON; parse_json prevents this
            return _error(400, "body cannot be stored as JSON"), None, None
        name = f"{QUARANTINE_PREFIX}{identity}.json"
        target = self.settings.quarantine_dir / name
        if target.exists():
            status = "duplicate"
        else:
            record = inbox_record(payload, event_id=identity)
            try:
                await asyncio.to_thread(quarantine_record, self.settings.quarantine_dir, name,
                                        record, reason)
            except OSError as exc:
                log.error("webhook not quarantined, Drift will retry: %s: %s",
                          type(exc).__name__, exc)
                return (_error(503, "the quarantine cannot be written now; retry later"),
                        "invalid", identity)
            status = "quarantined"
            log.warning("webhook quarantined as %s: %s", name, reason)
        response = JSONResponse({"status": status, "event_id": identity, "reason": reason})
        response.reason = reason  # for the request's log line
        return response, "invalid", identity

    async def widget_events(self, request: Request) -> Response:
        started = time.perf_counter()
        origin = request.headers.get("origin")
        if request.method == "OPTIONS":
            response, identity, dropped = self._widget_preflight(origin), None, None
        else:
            response, identity, dropped = await self._handle_widget(request, origin)
        if origin is not None and origin_allowed(origin, self.settings.widget_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
        # The answer depends on Origin: caches must not hand one origin's answer to another.
        response.headers["Vary"] = "Origin"
        reason = f" error={response.reason!r}" if response.status_code >= 400 else ""
        log.info("%s /widget-events %d event_id=%s dropped=%s %.1fms%s", request.method,
                 response.status_code, identity or "-", "-" if dropped is None else dropped,
                 (time.perf_counter() - started) * 1000, reason)
        return response

    def _widget_preflight(self, origin: str | None) -> Response:
        if not self.settings.widget_secret:
            return _error(404, "widget events are off: DRIFT_WIDGET_SECRET is not set")
        if origin is None or not origin_allowed(origin, self.settings.widget_origins):
            return _error(403, "origin not allowed: add it to DRIFT_WIDGET_ORIGINS")
        response = Response(status_code=204, headers={
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": f"Content-Type, {SIGNATURE_HEADER}",
            "Access-Control-Max-Age": "600",
        })
        response.reason = ""
        return response

    async def _handle_widget(self, request: Request, origin: str | None
                             ) -> tuple[Response, str | None, int | None]:
        secret = self.settings.widget_secret
        if not secret:
            return _error(404, "widget events are off: DRIFT_WIDGET_SECRET is not set"), None, None
        # Origin first: a page of another site is refused before any work is done for it.
        if not origin_allowed(origin, self.settings.widget_origins):
            return _error(403, "origin not allowed: add it to DRIFT_WIDGET_ORIGINS"), None, None
        try:
            body = await read_bounded_body(request, MAX_WIDGET_BODY_BYTES)
        except BodyTooLarge:
            return _error(413, f"body is larger than {MAX_WIDGET_BODY_BYTES} bytes"), None, None
        except ClientDisconnect:
            return _error(400, "client disconnected before sending the whole body"), None, None
        if not signature_matches(secret, body, request.headers.get(SIGNATURE_HEADER)):
            return _error(401, f"missing or wrong {SIGNATURE_HEADER}"), None, None
        try:
            event = filter_event(parse_json(body))
        except InvalidEvent as exc:
            return _error(400, exc.reason), None, None
        except InvalidWidgetEvent as exc:
            return _error(422, exc.reason), None, None
        self.ensure_writer()
        try:
            result = await self.writer.submit(event.payload, event.event_id,
                                              canonical=event.canonical)
        except InboxUnavailable as exc:
            log.error("widget event not stored, the site should retry: %s", exc)
            return (_error(503, "the inbox cannot be written now; retry later"),
                    event.event_id, event.dropped_fields)
        return (JSONResponse({"status": result.status, "event_id": result.event_id,
                              "dropped_fields": event.dropped_fields}),
                event.event_id, event.dropped_fields)

    async def healthz(self, request: Request) -> JSONResponse:
        self.ensure_writer()
        if not self.writer.running:
            return JSONResponse({"status": "unavailable", "reason": "inbox writer not running"},
                                status_code=503)
        if not self.writer.is_writable():
            return JSONResponse({"status": "unavailable", "reason": "inbox is not writable"},
                                status_code=503)
        if self.writer.last_error is not None:
            return JSONResponse({"status": "unavailable", "reason": "last inbox write failed"},
                                status_code=503)
        return JSONResponse({"status": "ok", "seen_events": self.writer.seen_count()})


def create_app(settings: Settings) -> Starlette:
    """The receiver as an ASGI app. Raises `WebhookConfigError` without a webhook token."""
    if not settings.webhook_token:
        raise WebhookConfigError(
            "DRIFT_WEBHOOK_TOKEN is not set: the receiver refuses to start without it")
    receiver = _Receiver(settings, InboxWriter(settings.inbox_dir, settings.state_dir))
    app = Starlette(
        routes=[
            Route("/webhooks", receiver.webhooks, methods=["POST"]),
            Route("/healthz", receiver.healthz, methods=["GET"]),
            Route("/widget-events", receiver.widget_events, methods=["POST", "OPTIONS"]),
        ],
        lifespan=receiver.lifespan,
    )
    app.state.receiver = receiver
    app.state.writer = receiver.writer
    return app


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the receiver with uvicorn until interrupted (`webhooks serve` in docs/reference.md)."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    app = create_app(settings)  # refuses before binding anything
    # Our own line per request (no token, no body) replaces uvicorn's access log, printed by
    # uvicorn's handler so `webhooks serve` shows it without further logging setup.
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["formatters"]["webhooks"] = {"format": "%(asctime)s %(levelname)s %(message)s"}
    log_config["handlers"]["webhooks"] = {"formatter": "webhooks", "class": "logging.StreamHandler",
                                          "stream": "ext://sys.stderr"}
    log_config["loggers"]["drift_pipeline.webhooks"] = {
        "handlers": ["webhooks"], "level": "INFO", "propagate": False}
    uvicorn.run(app, host=host, port=port, access_log=False, lifespan="on",
                log_level="info", log_config=log_config, server_header=False)
