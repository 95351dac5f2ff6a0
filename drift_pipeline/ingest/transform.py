"""Drift API objects -> raw table rows. Pure functions: plain dicts in, plain dicts out."""

from __future__ import annotations

from datetime import datetime

from drift_pipeline.pii import hash_pii
from drift_pipeline.timeutil import ms_to_ts


def int_or_none(value) -> int | None:
    """`value` as an int; None when it is missing or not a number (Drift sends ids as numbers or strings)."""
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def conversation_row(org_id: int, detail: dict, synced_at: datetime) -> dict:
    participants = [int(p) for p in (detail.get("participants") or []) if int_or_none(p) is not None]
    tags = [t.get("name") if isinstance(t, dict) else str(t) for t in (detail.get("conversationTags") or [])]
    return {
        "org_id": org_id,
        "conversation_id": int(detail["id"]),
        "status": detail.get("status"),
        "contact_id": int_or_none(detail.get("contactId")),
        "inbox_id": int_or_none(detail.get("inboxId")),
        "created_at": ms_to_ts(detail.get("createdAt")),
        "updated_at": ms_to_ts(detail.get("updatedAt")),
        "assignee_user_id": participants[0] if participants else None,
        "participant_user_ids": participants,
        "tags": [t for t in tags if t is not None],
        "related_playbook_id": int_or_none(detail.get("relatedPlaybookId")),
        "synced_at": synced_at,
    }


def message_row(org_id: int, conversation_id: int, message: dict, synced_at: datetime) -> dict:
    author = message.get("author") or {}
    return {
        "org_id": org_id,
        "conversation_id": int(message.get("conversationId") or conversation_id),
        "message_id": int(message["id"]),
        "created_at": ms_to_ts(message.get("createdAt")),
        "message_type": message.get("type"),
        "author_type": author.get("type"),
        "author_id": int_or_none(author.get("id")),
        "is_bot": bool(author.get("bot", False)),
        "body": message.get("body"),
        "edited_message_id": int_or_none(message.get("editedMessageId")),
        "edit_type": message.get("editType"),
        "synced_at": synced_at,
    }


def participant_rows(org_id: int, detail: dict, synced_at: datetime) -> list[dict]:
    """The conversation's contact and user participants as seen now (all current)."""
    conversation_id = int(detail["id"])
    changed_at = ms_to_ts(detail.get("updatedAt"))
    rows = []
    contact_id = int_or_none(detail.get("contactId"))
    if contact_id is not None:
        rows.append((contact_id, "contact"))
    rows.extend((int(p), "user") for p in (detail.get("participants") or []) if int_or_none(p) is not None)
    return [
        {
            "org_id": org_id,
            "conversation_id": conversation_id,
            "participant_id": pid,
            "participant_type": ptype,
            "is_current": True,
            "changed_at": changed_at,
            "synced_at": synced_at,
        }
        for pid, ptype in dict.fromkeys(rows)
    ]


def user_row(org_id: int, user: dict, salt: str, synced_at: datetime) -> dict:
    return {
        "org_id": int(user.get("orgId") or org_id),
        "user_id": int(user["id"]),
        "name": user.get("name"),
        "alias": user.get("alias"),
        "email_hash": hash_pii(user.get("email"), salt),
        "role": user.get("role"),
        "availability": user.get("availability"),
        "time_zone": user.get("timeZone"),
        "is_bot": bool(user.get("bot", False)),
        "created_at": ms_to_ts(user.get("createdAt")),
        "updated_at": ms_to_ts(user.get("updatedAt")),
        "synced_at": synced_at,
    }


def contact_row(org_id: int, contact: dict, salt: str, synced_at: datetime) -> dict:
    attributes = contact.get("attributes") or {}
    return {
        "org_id": org_id,
        "contact_id": int(contact["id"]),
        "email_hash": hash_pii(attributes.get("email"), salt),
        "external_id_hash": hash_pii(attributes.get("externalId"), salt),
        "created_at": ms_to_ts(contact.get("createdAt")),
        "synced_at": synced_at,
    }


def status_event_row(org_id: int, conversation_id: int, status: str, changed_at: datetime,
                     source: str, recorded_at: datetime) -> dict:
    return {
        "org_id": org_id,
        "conversation_id": conversation_id,
        "status": status,
        "changed_at": changed_at,
        "source": source,
        "recorded_at": recorded_at,
    }


def report_first_closes(report: dict, wanted: set[int]) -> dict[int, datetime]:
    """`firstCloseAt` per conversation from a `/reports/conversations` answer that asked for
    `metrics: ["firstCloseAt"]` (values come in the order asked), for the `wanted` ids only.
    Ids may arrive as numeric strings; rows without a close, or unreadable, are left out."""
    closes: dict[int, datetime] = {}
    rows = report.get("data") if isinstance(report, dict) else None
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        try:
            conversation_id = int(row.get("conversationId"))
            metrics = row.get("metrics")
            first_close = metrics[0] if isinstance(metrics, list) and metrics else None
            if conversation_id not in wanted or first_close in (None, "") or isinstance(first_close, bool):
                continue
            closes[conversation_id] = ms_to_ts(int(float(first_close)))
        except (TypeError, ValueError, OverflowError):
            continue
    return closes



def meeting_row(org_id: int, meeting: dict, salt: str, synced_at: datetime) -> dict:
    """A meeting as `raw.meetings` keeps it: `meetingNotes` (free text, personal data) only as a
    salted hash. Ids may arrive as numeric strings."""
    return {
        "org_id": org_id,
        "slug": str(meeting["slug"]),
        "status": meeting.get("status"),
        "meeting_source": meeting.get("meetingSource"),
        "meeting_type": meeting.get("meetingType"),
        "agent_user_id": int_or_none(meeting.get("agentId")),
        "scheduler_contact_id": int_or_none(meeting.get("schedulerId")),
        "conversation_id": int_or_none(meeting.get("conversationId")),
        "booked_by_user_id": int_or_none(meeting.get("bookedBy")),
        "slot_start_at": ms_to_ts(int_or_none(meeting.get("slotStart"))),
        "slot_end_at": ms_to_ts(int_or_none(meeting.get("slotEnd"))),
        "scheduled_at": ms_to_ts(int_or_none(meeting.get("scheduledAt"))),
        "updated_at": ms_to_ts(int_or_none(meeting.get("updatedAt"))),
        "end_user_time_zone": meeting.get("endUserTimeZone"),
        # A webhook's notes were hashed by the receiver (webhooks/events.py, NOTES_HASH_KEY).
        "meeting_notes_hash": hash_pii(meeting.get("meetingNotes"), salt) or meeting.get("meetingNotesHash"),
        "synced_at": synced_at,
    }


def meeting_change_row(row: dict, source: str, recorded_at: datetime) -> dict:
    """The observed state of a meeting (`meeting_row`'s output) as a `raw.meeting_changes` row."""
    return {"org_id": row["org_id"], "slug": row["slug"], "updated_at": row["updated_at"],
            "status": row["status"], "slot_start_at": row["slot_start_at"], "source": source,
            "recorded_at": recorded_at}


def playbook_row(org_id: int, playbook: dict, first_seen_at: datetime, listed_at: datetime) -> dict:
    return {
        "org_id": org_id,
        "playbook_id": int(playbook["id"]),
        "name": playbook.get("name"),
        "report_type": playbook.get("reportType"),
        "interaction_id": int_or_none(playbook.get("interactionId")),
        "created_at": ms_to_ts(int_or_none(playbook.get("createdAt"))),
        "updated_at": ms_to_ts(int_or_none(playbook.get("updatedAt"))),
        "first_seen_at": first_seen_at,
        "last_listed_at": listed_at,
        "currently_listed": True,
        "synced_at": listed_at,
    }


def playbook_goal_rows(org_id: int, playbook: dict, synced_at: datetime) -> list[dict]:
    goals = playbook.get("goals") if isinstance(playbook.get("goals"), list) else []
    return [{"org_id": org_id, "playbook_id": int(playbook["id"]),
             "goal_id": str(goal["id"]), "message": goal.get("message"), "synced_at": synced_at}
            for goal in goals if isinstance(goal, dict) and goal.get("id") not in (None, "")]


def account_row(org_id: int, account: dict, synced_at: datetime) -> dict:
    return {
        "org_id": org_id,
        "account_id": str(account["accountId"]),
        "name": account.get("name"),
        "domain": account.get("domain"),
        "owner_user_id": int_or_none(account.get("ownerId")),
        "targeted": None if account.get("targeted") is None else bool(account["targeted"]),
        "deleted": bool(account.get("deleted", False)),
        "created_at": ms_to_ts(int_or_none(account.get("createDateTime"))),
        "updated_at": ms_to_ts(int_or_none(account.get("updateDateTime"))),
        "synced_at": synced_at,
    }
