"""Widget events a site forwards from the Drift widget in its visitors' browsers (`POST
/widget-events`): signature, origin check, and the privacy filter that decides what is kept.

Pure functions only, like `events`: the receiver and the apply step agree on what a widget
event is and on its id.

What a browser sends is untrusted and may carry personal data (a visitor who types an email
into a UTM-tagged link, a page path with an address in it), so only five known fields are
kept, each bounded: the event type, the conversation id, the five UTM parameters, the page
*path* (query string and fragment cut off) and the time. Anything else, and any value that
looks like an email or is too long to be a tag, is dropped and only counted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from drift_pipeline.webhooks.events import canonical_json, event_id

# Marks an inbox record as a widget event: Drift's own webhooks carry `orgId`, these never do.
WIDGET_SOURCE = "widget"
SIGNATURE_HEADER = "X-Drift-Pipeline-Signature"
# A real event is a few hundred bytes; the limit leaves room and no more for abuse.
MAX_WIDGET_BODY_BYTES = 16 * 1024
UTM_FIELDS = ("source", "medium", "campaign", "term", "content")
KNOWN_FIELDS = frozenset({"type", "conversationId", "utm", "page", "occurredAt"})
# UTM values are short tags; anything longer is free text nobody should be storing.
MAX_UTM_CHARS = 100
MAX_PAGE_CHARS = 300
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9:_.-]{0,63}$")
_EMAIL_RE = re.compile(r"[^\s@/?#&=]+@[^\s@/?#&=]+\.[A-Za-z]{2,}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Epoch milliseconds between 2001 and 2286: catches seconds or ISO strings sent by mistake.
_MIN_MS, _MAX_MS = 10**12, 10**13


class InvalidWidgetEvent(ValueError):
    """A widget event the pipeline cannot use; the message is a one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WidgetEvent:
    """A filtered widget event: what is stored (`payload`, as `canonical` JSON) and its id."""

    event_id: str
    type: str
    conversation_id: int
    occurred_at_ms: int
    utm: dict[str, str | None]
    page_path: str | None
    dropped_fields: int
    payload: dict[str, Any] = field(repr=False)
    canonical: str = field(default="", repr=False, compare=False)


def sign(secret: str, body: bytes) -> str:
    """The signature a site's backend puts in `X-Drift-Pipeline-Signature`: hex HMAC-SHA256 of
    the exact body bytes with the site secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a request's signature header against the body."""
    if not signature:
        return False
    expected = sign(secret, body).encode("ascii")
    return hmac.compare_digest(signature.strip().lower().encode("utf-8", "surrogatepass"), expected)


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """A request without an Origin header is not from a browser page (a site's backend relay)
    and is judged by its signature alone; a browser's Origin must be in the allowed list."""
    if origin is None:
        return True
    return origin.strip().rstrip("/").lower() in allowed


def is_widget_payload(payload: Mapping[str, Any]) -> bool:
    """Whether an inbox record's payload is a widget event rather than a Drift webhook."""
    return payload.get("source") == WIDGET_SOURCE and "orgId" not in payload


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _looks_private(text: str) -> bool:
    # Percent-decoded first: `bob%40example.com` is an email too.
    return bool(_EMAIL_RE.search(unquote(text)))


def _tag(value: Any, limit: int) -> tuple[str | None, bool]:
    """(kept value, dropped?) for one short text value: blanks are absent, not dropped."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, False
    if not isinstance(value, str):
        return None, True
    value = value.strip()
    if len(value) > limit or _CONTROL_RE.search(value) or _looks_private(value):
        return None, True
    return value, False


def _page_path(value: Any) -> tuple[str | None, bool]:
    """The path of a page URL or path; query and fragment are cut off (they carry form input
    and tracking ids), a path that is not one or looks private is dropped."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, False
    if not isinstance(value, str):
        return None, True
    value = value.strip()
    if value.startswith("/") and not value.startswith("//"):
        path = value.split("#", 1)[0].split("?", 1)[0]
    else:
        try:
            parts = urlsplit(value)
        except ValueError:
            return None, True
        if parts.scheme not in ("http", "https", "") or not parts.netloc:
            return None, True
        # One leading slash, so the stored path reads back as a path, not a host.
        path = "/" + parts.path.lstrip("/")
    return _tag(path, MAX_PAGE_CHARS)


def filter_event(body: Any) -> WidgetEvent:
    """Check a parsed widget event and keep only what may be stored.

    `body` is what the site sent (`{type, conversationId, utm, page, occurredAt}`) or a stored
    payload (filtering is idempotent, so the apply step re-checks what it reads). Raises
    `InvalidWidgetEvent` when a required field is missing or unusable; unknown fields and
    private-looking values are dropped and counted instead.
    """
    if not isinstance(body, dict):
        raise InvalidWidgetEvent("widget event must be a JSON object")
    event_type = body.get("type")
    if not isinstance(event_type, str) or not _TYPE_RE.match(event_type):
        raise InvalidWidgetEvent(
            "type must be a widget event name like conversation:start (letters, digits, ':_.-', "
            "at most 64)")
    conversation_id = body.get("conversationId")
    if not _is_int(conversation_id) or conversation_id <= 0:
        raise InvalidWidgetEvent("conversationId must be a positive integer")
    occurred_at = body.get("occurredAt")
    if not _is_int(occurred_at) or not _MIN_MS <= occurred_at < _MAX_MS:
        raise InvalidWidgetEvent("occurredAt must be epoch milliseconds (e.g. Date.now())")

    stored = body.get("source") == WIDGET_SOURCE
    previously_dropped = body.get("droppedFields", 0) if stored else 0
    ignored = {"source", "droppedFields"} if stored else set()
    dropped = sum(1 for key in body if key not in KNOWN_FIELDS and key not in ignored)

    utm: dict[str, str | None] = dict.fromkeys(UTM_FIELDS)
    raw_utm = body.get("utm")
    if isinstance(raw_utm, dict):
        for key, value in raw_utm.items():
            if key not in UTM_FIELDS:
                dropped += 1
                continue
            utm[key], was_dropped = _tag(value, MAX_UTM_CHARS)
            dropped += was_dropped
    elif raw_utm is not None:
        dropped += 1
    page_path, page_dropped = _page_path(body.get("page"))
    dropped += page_dropped
    if _is_int(previously_dropped) and previously_dropped > 0:
        dropped += previously_dropped

    kept = {"source": WIDGET_SOURCE, "type": event_type, "conversationId": conversation_id,
            "utm": utm, "page": page_path, "occurredAt": occurred_at}
    # The id is of what is kept, so a resend with extra junk is still the same event.
    identity = event_id(kept)
    payload = {**kept, "droppedFields": dropped}
    return WidgetEvent(
        event_id=identity, type=event_type, conversation_id=conversation_id,
        occurred_at_ms=occurred_at, utm=utm, page_path=page_path, dropped_fields=dropped,
        payload=payload, canonical=canonical_json(payload),
    )
