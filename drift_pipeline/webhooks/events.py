"""Drift webhook events: canonical form, stable id and shape validation.

Pure functions only: no I/O, so the receiver, the inbox reader and `replay event` all agree on
what an event is and what its id is.

Drift sends no event id and retries deliveries, so the id is the sha256 of the canonical JSON
of the payload without its `token` (see drift-api.md, Webhooks). Key order, whitespace and the
token therefore never change the id; any change of value does.

Drift's shapes vary (drift-api.md, "(varies)"): `orgId` is a number or a numeric string, a status
comes in any letter case, `changedAt` may be missing, `app_disconnected` may have no `data`, and
contact events name the contact as `endUserId` (older ones as `contactId`, `id` or an email).
`validate_event` accepts every documented variant and puts the normalized values on the
`WebhookEvent` (the payload and its id stay exactly as sent), so the apply step reads one shape.

Identical bytes are not always a redelivery: a status or participant event without `changedAt`
says only "conversation C is closed now" (or "user U joined C"), so a second close after a
reopen is byte for byte the first one. `WebhookEvent.repeatable` marks those events; the
receiver stores such a repeat again and the apply step re-fetches the conversation for it
instead of skipping it (DECISIONLOG: what is trusted from webhook payloads).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

CONVERSATION_STATUSES = frozenset({"open", "closed", "pending", "bulk_sent"})

KNOWN_EVENT_TYPES = frozenset({
    "new_conversation",
    "new_message",
    "conversation_status_updated",
    "conversation_inactive",
    "conversation_participant_added",
    "conversation_participant_removed",
    "contact_identified",
    "contact_updated",
    "gdpr_delete_requested",
    "app_disconnected",
    "new_meeting",
    "playbook_goal_met",
})


class InvalidEvent(ValueError):
    """A webhook body that is not a usable Drift event; the message is a one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


CONTACT_EVENT_TYPES = frozenset({"contact_identified", "contact_updated", "gdpr_delete_requested"})

# Events whose payload names a state, not a change: without `changedAt` the same state reached
# again gives the same bytes. Every other type carries something that never repeats (a message
# id and its createdAt, a conversation id on creation) or a `timestamp`.
REPEATABLE_EVENT_TYPES = frozenset({
    "conversation_status_updated",
    "conversation_participant_added",
    "conversation_participant_removed",
})


@dataclass(frozen=True)
class WebhookEvent:
    """A validated webhook event. `data` is the payload's `data` object, untouched (an empty
    object when Drift sent none); the other fields are normalized from it.

    `occurred_at_ms` is None when Drift did not say when it happened (e.g. a status event
    without `changedAt`): the apply step then uses the time the event was received.

    `repeatable` is True when an identical payload can be a genuine new change rather than a
    redelivery (a status or participant event without `changedAt`, see the module docstring).
    """

    event_id: str
    type: str
    org_id: int
    conversation_id: int | None
    occurred_at_ms: int | None
    data: dict[str, Any] = field(repr=False)
    known: bool = True
    # The canonical JSON the id was computed from; stored as is, so it is serialized once.
    canonical: str = field(default="", repr=False, compare=False)
    status: str | None = None  # conversation_status_updated: lower case
    contact_id: int | None = None  # contact events naming the contact by id
    contact_email: str | None = field(default=None, repr=False)  # ... or by email only
    repeatable: bool = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes | str) -> Any:
    """Parse a webhook body strictly (no NaN/Infinity, which other readers cannot load).

    Raises `InvalidEvent` with a one-line reason on anything that is not JSON.
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidEvent("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidEvent(f"body is not valid JSON: {reason}") from None


def strip_token(payload: Any) -> Any:
    """The payload without its verification token: the token is a secret and never stored.

    Anything that is not a JSON object has no top-level token and is returned as is (an
    authenticated but malformed body is still kept, in quarantine).
    """
    if not isinstance(payload, Mapping):
        return payload
    return {key: value for key, value in payload.items() if key != "token"}


def canonical_json(payload: Any) -> str:
    """Sorted keys, no whitespace, ASCII only, top-level `token` removed."""
    return json.dumps(strip_token(payload), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def event_id(payload: Any) -> str:
    """Stable id of an event: sha256 hex of its canonical JSON (same for every redelivery)."""
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python; `true` is never a valid id or timestamp.
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: Any) -> int | None:
    """An integer, or a string of decimal digits (Drift sends some ids that way), as an int."""
    if _is_int(value):
        return value
    text = value.strip() if isinstance(value, str) else ""
    # At most 19 digits: every id is a BIGINT.
    if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) < 2 ** 63:
        return int(text)
    return None


def _require_int(data: Mapping[str, Any], key: str, event_type: str) -> int:
    value = data.get(key)
    if not _is_int(value):
        raise InvalidEvent(f"{event_type}: data.{key} must be an integer, got {_kind(value)}")
    return value


def _optional_time(data: Mapping[str, Any], key: str, event_type: str) -> None:
    # Missing is fine (the time received stands in); present but unusable is not.
    if key in data and data[key] is not None and _as_int(data[key]) is None:
        raise InvalidEvent(
            f"{event_type}: data.{key} must be epoch milliseconds, got {_kind(data[key])}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _check_new_message(data: Mapping[str, Any], event_type: str) -> None:
    _require_int(data, "conversationId", event_type)
    if data.get("id") is None or isinstance(data.get("id"), (bool, dict, list)):
        raise InvalidEvent(f"{event_type}: data.id (the message id) is missing")
    _require_int(data, "createdAt", event_type)


def _check_new_conversation(data: Mapping[str, Any], event_type: str) -> None:
    if not (_is_int(data.get("id")) or _is_int(data.get("conversationId"))):
        raise InvalidEvent(f"{event_type}: data.id or data.conversationId must be an integer")


def _status(data: Mapping[str, Any]) -> str | None:
    status = data.get("status")
    return status.strip().lower() if isinstance(status, str) else None


def _check_status_updated(data: Mapping[str, Any], event_type: str) -> None:
    _require_int(data, "conversationId", event_type)
    status = data.get("status")
    if _status(data) not in CONVERSATION_STATUSES:
        allowed = ", ".join(sorted(CONVERSATION_STATUSES))
        # The value itself is not echoed: error messages never repeat the body.
        shown = "another string" if isinstance(status, str) else _kind(status)
        raise InvalidEvent(f"{event_type}: data.status must be one of {allowed} (any case), "
                           f"got {shown}")
    _optional_time(data, "changedAt", event_type)


def _check_participants(list_key: str):
    def check(data: Mapping[str, Any], event_type: str) -> None:
        _require_int(data, "conversationId", event_type)
        if not isinstance(data.get(list_key), list):
            raise InvalidEvent(
                f"{event_type}: data.{list_key} must be a list, got {_kind(data.get(list_key))}")
        _optional_time(data, "changedAt", event_type)
    return check


def _check_conversation_inactive(data: Mapping[str, Any], event_type: str) -> None:
    _check_new_conversation(data, event_type)


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and "@" in value and bool(value.strip())


def _contact_id(data: Mapping[str, Any]) -> int | None:
    """The contact a contact event names: `endUserId` (current docs), else `contactId` or `id`."""
    for key in ("endUserId", "contactId", "id"):
        value = _as_int(data.get(key))
        if value is not None:
            return value
    return None


def _contact_email(data: Mapping[str, Any]) -> str | None:
    """The email a contact event names when it gives no id (`endUserId` may be an email)."""
    attributes = data.get("attributes")
    for value in (data.get("endUserId"), data.get("email"),
                  attributes.get("email") if isinstance(attributes, dict) else None):
        if _is_email(value):
            return value.strip()
    return None


def _check_contact(data: Mapping[str, Any], event_type: str) -> None:
    if _contact_id(data) is None and _contact_email(data) is None:
        raise InvalidEvent(f"{event_type}: data must name the contact (endUserId, contactId or "
                           "id as an integer, or an email)")


def _check_nothing(data: Mapping[str, Any], event_type: str) -> None:
    return None


# What a `new_meeting` payload must carry to be stored as it is; with less (Drift may send a
# subset naming the slug), the apply step fetches the meetings of its day.
MEETING_FIELDS = ("slug", "status", "slotStart", "slotEnd", "updatedAt", "scheduledAt", "agentId")
# Set by the receiver in place of `meetingNotes` (free text: personal data, never stored).
NOTES_HASH_KEY = "meetingNotesHash"


def _check_new_meeting(data: Mapping[str, Any], event_type: str) -> None:
    slug = data.get("slug")
    if not (isinstance(slug, str) and slug.strip()) and not _is_int(slug):
        raise InvalidEvent(f"{event_type}: data.slug (the meeting id) must be a non-empty string, got {_kind(slug)}")
    for key in ("slotStart", "slotEnd", "updatedAt", "scheduledAt"):
        _optional_time(data, key, event_type)


def complete_meeting(data: Mapping[str, Any]) -> bool:
    """True when a `new_meeting` payload is the whole meeting (stored as it is)."""
    return all(data.get(key) is not None for key in MEETING_FIELDS)


GOAL_ID_KEYS = ("playbookId", "conversationId", "endUserId")


def _check_goal_met(data: Mapping[str, Any], event_type: str) -> None:
    # No documented example: any of the four may be absent, ids may be numeric strings; what is
    # present must be usable, and at least one must be there.
    if all(data.get(key) is None for key in (*GOAL_ID_KEYS, "goalId")):
        raise InvalidEvent(f"{event_type}: data names no playbookId, goalId, conversationId or endUserId")
    for key in GOAL_ID_KEYS:
        if data.get(key) is not None and _as_int(data[key]) is None:
            raise InvalidEvent(f"{event_type}: data.{key} must be an integer or a numeric string, "
                               f"got {_kind(data[key])}")
    goal = data.get("goalId")
    if goal is not None and not (isinstance(goal, str) and goal.strip()) and not _is_int(goal):
        raise InvalidEvent(f"{event_type}: data.goalId must be a string, got {_kind(goal)}")


def goal_met_ids(data: Mapping[str, Any]) -> dict[str, Any]:
    """playbook_id, goal_id, conversation_id, contact_id of a (validated) `playbook_goal_met`."""
    goal = data.get("goalId")
    return {"playbook_id": _as_int(data.get("playbookId")), "goal_id": None if goal is None else str(goal),
            "conversation_id": _as_int(data.get("conversationId")), "contact_id": _as_int(data.get("endUserId"))}


def hash_meeting_notes(payload: Any, hash_text) -> Any:
    """The payload with a `new_meeting`'s `meetingNotes` replaced by `meetingNotesHash`
    (`hash_text(notes)`): the receiver does it before anything is stored or hashed into the
    event id, so the notes never reach a file. Other payloads are returned as they are."""
    if not isinstance(payload, dict) or payload.get("type") != "new_meeting":
        return payload
    data = payload.get("data")
    if not isinstance(data, dict) or "meetingNotes" not in data:
        return payload
    kept = {key: value for key, value in data.items() if key != "meetingNotes"}
    kept[NOTES_HASH_KEY] = hash_text(data["meetingNotes"]) if data["meetingNotes"] is not None else None
    return {**payload, "data": kept}


_CHECKS = {
    "new_message": _check_new_message,
    "new_conversation": _check_new_conversation,
    "conversation_status_updated": _check_status_updated,
    "conversation_participant_added": _check_participants("addedParticipants"),
    "conversation_participant_removed": _check_participants("removedParticipants"),
    "conversation_inactive": _check_conversation_inactive,
    "contact_identified": _check_contact,
    "contact_updated": _check_contact,
    "gdpr_delete_requested": _check_contact,
    "app_disconnected": _check_nothing,
    "new_meeting": _check_new_meeting,
    "playbook_goal_met": _check_goal_met,
}
assert set(_CHECKS) == KNOWN_EVENT_TYPES


def _conversation_id(event_type: str, data: Mapping[str, Any]) -> int | None:
    if _is_int(data.get("conversationId")):
        return data["conversationId"]
    if event_type in ("playbook_goal_met", "new_meeting"):
        return _as_int(data.get("conversationId"))
    if event_type in ("new_conversation", "conversation_inactive") and _is_int(data.get("id")):
        return data["id"]
    return None


def _occurred_at_ms(data: Mapping[str, Any]) -> int | None:
    # `timestamp` is when contact_updated happened.
    for key in ("changedAt", "createdAt", "timestamp"):
        value = _as_int(data.get(key))
        if value is not None:
            return value
    return None


def _repeatable(event_type: str, data: Mapping[str, Any]) -> bool:
    # A changedAt makes every genuine change distinct, so an identical copy is a redelivery.
    return event_type in REPEATABLE_EVENT_TYPES and _as_int(data.get("changedAt")) is None


def _org_id(payload: Mapping[str, Any]) -> int:
    org_id = _as_int(payload.get("orgId"))
    if org_id is None:
        raise InvalidEvent("event.orgId must be an integer or a numeric string, "
                           f"got {_kind(payload.get('orgId'))}")
    return org_id


def validate_event(payload: Any) -> WebhookEvent:
    """Check a parsed webhook body and describe it.

    Unknown event types are valid (`known=False`): they are stored and skipped later, so a new
    Drift event type never makes Drift retry. Raises `InvalidEvent` with a one-line reason.
    """
    if not isinstance(payload, dict):
        raise InvalidEvent(f"event must be a JSON object, got {_kind(payload)}")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidEvent(f"event.type must be a non-empty string, got {_kind(event_type)}")
    if len(event_type) > 200:
        raise InvalidEvent("event.type is longer than 200 characters")
    org_id = _org_id(payload)
    # Missing `data` (app_disconnected sends none) reads as an empty object; each type's
    # check then says which field it lacks.
    data = payload.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidEvent(f"event.data must be an object, got {_kind(data)}")
    check = _CHECKS.get(event_type)
    if check is not None:
        check(data, event_type)
    try:
        canonical = canonical_json(payload)
    except ValueError as exc:  # e.g. a float NaN built in Python rather than parsed
        raise InvalidEvent(f"event cannot be serialized: {exc}") from None
    return WebhookEvent(
        event_id=hashlib.sha256(canonical.encode("ascii")).hexdigest(),
        type=event_type,
        org_id=org_id,
        conversation_id=_conversation_id(event_type, data),
        occurred_at_ms=_occurred_at_ms(data),
        data=data,
        known=check is not None,
        canonical=canonical,
        status=_status(data) if event_type == "conversation_status_updated" else None,
        contact_id=_contact_id(data) if event_type in CONTACT_EVENT_TYPES else None,
        contact_email=_contact_email(data) if event_type in CONTACT_EVENT_TYPES else None,
        repeatable=_repeatable(event_type, data),
    )
