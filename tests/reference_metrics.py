"""An independent, pure-Python reading of the metric definitions (dbt_project/DECISIONLOG.md).

Nothing here imports dbt or the warehouse: inputs are Drift API shapes (conversation detail
dicts, message dicts, status events), outputs are the mart rows docs/reference.md names. Tests build
the marts with dbt and compare them to these functions on the same data.

One workspace at a time: callers split multi-org data by org before calling.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1)

FCT_COLUMNS = (
    "conversation_id", "status", "contact_id", "inbox_id", "created_at", "updated_at",
    "first_contact_message_at", "first_agent_message_at", "first_responder_user_id",
    "first_response_seconds", "has_bot", "handed_off", "first_closed_at", "open_to_close_seconds",
    "reopen_count", "handle_time_seconds", "message_count", "contact_message_count",
    "agent_message_count", "bot_message_count",
)
DAILY_COLUMNS = (
    "metric_date", "conversations", "responded_conversations", "first_response_p50_seconds",
    "first_response_p90_seconds", "bot_conversations", "handed_off_conversations", "handoff_rate",
    "closed_conversations", "open_to_close_p50_seconds", "open_to_close_p90_seconds",
)
AGENT_DAILY_COLUMNS = (
    "metric_date", "user_id", "agent_name", "conversations_first_responded",
    "first_response_p50_seconds",
)


def to_utc_naive(value) -> datetime | None:
    """Drift epoch milliseconds (or a datetime) -> naive UTC datetime, exact to the millisecond."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    return _EPOCH + timedelta(milliseconds=int(value))


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def quantile_cont(values, fraction: float) -> float | None:
    """Continuous quantile with linear interpolation (numpy's default, SQL percentile_cont)."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def author_class(message: dict) -> str:
    author = message.get("author") or {}
    if author.get("type") == "contact":
        return "contact"
    if author.get("bot"):
        return "bot"
    if author.get("type") == "user":
        return "agent"
    return "unknown"


def chat_messages(messages: list[dict]) -> list[dict]:
    """Chat messages not deleted by a `delete` edit; notes, prompts, suggestions, edits dropped."""
    deleted = {
        m.get("editedMessageId")
        for m in messages
        if m.get("type") == "edit" and m.get("editType") == "delete"
    }
    return [m for m in messages if m.get("type") == "chat" and m.get("id") not in deleted]


def _reopen_count(events: list[tuple[str, datetime]]) -> int:
    ordered = sorted(events, key=lambda e: (e[1], e[0]))
    return sum(
        1
        for previous, current in zip(ordered, ordered[1:])
        if current[0] == "open" and previous[0] == "closed"
    )


def reference_fct_conversations(
    conversations: list[dict],
    messages: dict[int, list[dict]],
    status_events: list[tuple[int, str, datetime]],
) -> dict[int, dict]:
    """conversation_id -> fct_conversations row (without first_response_business_seconds)."""
    events_by_conversation: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for conversation_id, status, changed_at in status_events:
        events_by_conversation[conversation_id].append((status, to_utc_naive(changed_at)))

    rows = {}
    for conversation in conversations:
        conversation_id = conversation["id"]
        created_at = to_utc_naive(conversation.get("createdAt"))
        updated_at = to_utc_naive(conversation.get("updatedAt"))
        chats = [
            (to_utc_naive(m.get("createdAt")), m.get("id"), author_class(m), (m.get("author") or {}).get("id"))
            for m in chat_messages(messages.get(conversation_id, []))
        ]
        contact_times = [at for at, _, cls, _ in chats if cls == "contact" and at is not None]
        bot_times = [at for at, _, cls, _ in chats if cls == "bot" and at is not None]
        first_contact = min(contact_times, default=None)

        first_agent = first_responder = None
        if first_contact is not None:
            replies = sorted(
                (at, message_id, author_id)
                for at, message_id, cls, author_id in chats
                if cls == "agent" and at is not None and at >= first_contact
            )
            if replies:
                first_agent, _, first_responder = replies[0]

        first_bot = min(bot_times, default=None)
        has_bot = first_bot is not None
        handed_off = has_bot and any(
            cls == "agent" and at is not None and at > first_bot for at, _, cls, _ in chats
        )

        events = events_by_conversation.get(conversation_id, [])
        closed_times = [at for status, at in events if status == "closed"]
        if closed_times:
            first_closed = min(closed_times)
        elif conversation.get("status") == "closed":
            first_closed = updated_at
        else:
            first_closed = None

        rows[conversation_id] = {
            "conversation_id": conversation_id,
            "status": conversation.get("status"),
            "contact_id": conversation.get("contactId"),
            "inbox_id": conversation.get("inboxId"),
            "created_at": created_at,
            "updated_at": updated_at,
            "first_contact_message_at": first_contact,
            "first_agent_message_at": first_agent,
            "first_responder_user_id": first_responder,
            "first_response_seconds": seconds_between(first_contact, first_agent),
            "has_bot": has_bot,
            "handed_off": handed_off,
            "first_closed_at": first_closed,
            "open_to_close_seconds": seconds_between(created_at, first_closed),
            "reopen_count": _reopen_count(events),
            "handle_time_seconds": seconds_between(first_agent, first_closed),
            "message_count": len(chats),
            "contact_message_count": sum(1 for c in chats if c[2] == "contact"),
            "agent_message_count": sum(1 for c in chats if c[2] == "agent"),
            "bot_message_count": sum(1 for c in chats if c[2] == "bot"),
        }
    return rows


REPLY_COLUMNS = (
    "agent_reply_count", "reply_time_p50_seconds", "reply_time_max_seconds", "contact_wait_seconds",
    "reply_time_p50_business_seconds", "reply_time_max_business_seconds", "unique_agent_count",
    "agent_switch_count", "touch_class",
)


def reference_reply_breadth(messages: dict[int, list[dict]], fct: dict[int, dict]) -> dict[int, dict]:
    """conversation_id -> the reply-breadth columns of fct_conversations, for every conversation
    of `fct` (reference_fct_conversations' rows, for first_closed_at), business hours on the
    default schedule. A walk over the chat messages in (time, id) order: a contact message
    starts a wait unless one is running; an agent message ends a running wait (a reply)."""
    rows = {}
    for conversation_id, fct_row in fct.items():
        chats = sorted(
            (to_utc_naive(m.get("createdAt")), m.get("id"), author_class(m), (m.get("author") or {}).get("id"))
            for m in chat_messages(messages.get(conversation_id, []))
        )
        waiting_since = None
        replies = []  # (waited from, replied at)
        agents = []
        for at, _, cls, author_id in chats:
            if cls == "contact" and waiting_since is None:
                waiting_since = at
            elif cls == "agent":
                agents.append(author_id)
                if waiting_since is not None:
                    replies.append((waiting_since, at))
                    waiting_since = None
        seconds = [seconds_between(start, end) for start, end in replies]
        business = [reference_business_seconds(start, end) for start, end in replies]
        touch = None
        if fct_row["first_closed_at"] is not None:
            touch = {0: "none", 1: "one", 2: "two"}.get(len(agents), "multi")
        rows[conversation_id] = {
            "agent_reply_count": len(replies),
            "reply_time_p50_seconds": quantile_cont(seconds, 0.5),
            "reply_time_max_seconds": max(seconds, default=None),
            "contact_wait_seconds": float(sum(seconds)),
            "reply_time_p50_business_seconds": quantile_cont(business, 0.5),
            "reply_time_max_business_seconds": max(business, default=None),
            "unique_agent_count": len({a for a in agents if a is not None}),
            "agent_switch_count": sum(1 for a, b in zip(agents, agents[1:]) if a is not None and b is not None and a != b),
            "touch_class": touch,
        }
    return rows


def reference_daily_metrics(fct: dict[int, dict]) -> dict[date, dict]:
    """metric_date (UTC day of created_at) -> agg_daily_metrics row; only days with conversations."""
    by_day: dict[date, list[dict]] = defaultdict(list)
    for row in fct.values():
        if row["created_at"] is not None:
            by_day[row["created_at"].date()].append(row)

    daily = {}
    for day, rows in by_day.items():
        first_responses = [r["first_response_seconds"] for r in rows if r["first_response_seconds"] is not None]
        open_to_close = [r["open_to_close_seconds"] for r in rows if r["open_to_close_seconds"] is not None]
        bot_conversations = sum(1 for r in rows if r["has_bot"])
        handed_off = sum(1 for r in rows if r["handed_off"])
        daily[day] = {
            "metric_date": day,
            "conversations": len(rows),
            "responded_conversations": len(first_responses),
            "first_response_p50_seconds": quantile_cont(first_responses, 0.5),
            "first_response_p90_seconds": quantile_cont(first_responses, 0.9),
            "bot_conversations": bot_conversations,
            "handed_off_conversations": handed_off,
            "handoff_rate": handed_off / bot_conversations if bot_conversations else None,
            "closed_conversations": sum(1 for r in rows if r["first_closed_at"] is not None),
            "open_to_close_p50_seconds": quantile_cont(open_to_close, 0.5),
            "open_to_close_p90_seconds": quantile_cont(open_to_close, 0.9),
        }
    return daily


def reference_agent_daily(fct: dict[int, dict], users: list[dict]) -> dict[tuple[date, int], dict]:
    """(metric_date, user_id) -> agg_agent_daily row for every first responder.

    `users` are Drift API user dicts (`id`, `name`) or raw.users rows (`user_id`, `name`).
    """
    names = {u.get("user_id", u.get("id")): u.get("name") for u in users}
    grouped: dict[tuple[date, int], list[float]] = defaultdict(list)
    for row in fct.values():
        if row["first_responder_user_id"] is None or row["created_at"] is None:
            continue
        grouped[(row["created_at"].date(), row["first_responder_user_id"])].append(row["first_response_seconds"])
    return {
        (day, user_id): {
            "metric_date": day,
            "user_id": user_id,
            "agent_name": names.get(user_id),
            "conversations_first_responded": len(seconds),
            "first_response_p50_seconds": quantile_cont(seconds, 0.5),
        }
        for (day, user_id), seconds in grouped.items()
    }


DEFAULT_BUSINESS_HOURS = {
    day: ("09:00", "17:00") for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def reference_business_seconds(
    start: datetime | None,
    end: datetime | None,
    tz: str = "America/New_York",
    hours: dict | None = None,
    holidays: list[str] | tuple = (),
) -> float | None:
    """Seconds of [start, end] (naive UTC) inside the weekly schedule of `tz`, holidays closed."""
    if start is None or end is None:
        return None
    zone = ZoneInfo(tz)
    hours = DEFAULT_BUSINESS_HOURS if hours is None else hours
    closed_days = {date.fromisoformat(d) for d in holidays}
    utc = timezone.utc
    local_day = start.replace(tzinfo=utc).astimezone(zone).date()
    last_day = end.replace(tzinfo=utc).astimezone(zone).date()
    total = 0.0
    while local_day <= last_day:
        window = hours.get(_WEEKDAYS[local_day.weekday()])
        if window and local_day not in closed_days:
            opens, closes = (_local_to_utc(local_day, hhmm, zone) for hhmm in window)
            overlap = (min(end, closes) - max(start, opens)).total_seconds()
            total += max(overlap, 0.0)
        local_day += timedelta(days=1)
    return total


def _local_to_utc(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    local = datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=hour, minutes=minute)
    # Wall-clock arithmetic on an aware datetime keeps the zone; re-resolve the offset for that wall time.
    local = local.replace(tzinfo=None).replace(tzinfo=zone)
    return local.astimezone(timezone.utc).replace(tzinfo=None)
