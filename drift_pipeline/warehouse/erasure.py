"""Warehouse SQL of a contact's erasure (GDPR): which contacts a request names, their rows
blanked or deleted, and `raw.erased_contacts`, the salted hashes later syncs suppress.

The caller (`erasure.py`) owns the transaction, the audit row and the transcripts; these
functions only read and change raw rows. Identifiers arrive hashed where the table stores
hashes: nothing here knows the salt. DuckDB's SQL (`json_extract_string`, `contains`,
`INSERT OR REPLACE`): erasure is not run on Postgres yet (docs/postgres.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime


def erased_contact_hashes(conn, org_id: int) -> set[str]:
    """The salted contact-id hashes erased in this org: syncs keep these contacts out."""
    return {r[0] for r in conn.execute(
        "SELECT contact_id_hash FROM raw.erased_contacts WHERE org_id = ?", [org_id]).fetchall()}


def erased_conversations(conn, contact_id_hash: str, org_id: int | None = None) -> set[tuple[int, int]]:
    """(org_id, conversation_id) recorded when the contact of this hash was erased (in any org,
    or in `org_id` only)."""
    keys = set()
    for org, conversation_ids in conn.execute(
            "SELECT org_id, conversation_ids FROM raw.erased_contacts WHERE contact_id_hash = ? "
            "AND (? IS NULL OR org_id = ?)", [contact_id_hash, org_id, org_id]).fetchall():
        keys |= {(org, c) for c in json.loads(conversation_ids or "[]")}
    return keys


def contacts_named(conn, *, contact_id: int | None = None, email_hash: str | None = None,
                   org_id: int | None = None) -> set[tuple[int, int]]:
    """(org_id, contact_id) of the stored contacts with this id or email hash (in `org_id`
    only, when given), and, for an id, of conversations that still name it."""
    conditions, params = [], []
    if contact_id is not None:
        conditions.append("contact_id = ?")
        params.append(int(contact_id))
    if email_hash is not None:
        conditions.append("email_hash = ?")
        params.append(email_hash)
    if not conditions:
        return set()
    org_filter = "" if org_id is None else " AND org_id = ?"
    org_params = [] if org_id is None else [org_id]
    found = set(conn.execute(
        f"SELECT org_id, contact_id FROM raw.contacts WHERE ({' OR '.join(conditions)}){org_filter}",
        params + org_params).fetchall())
    if contact_id is not None:
        found |= set(conn.execute(
            f"SELECT DISTINCT org_id, contact_id FROM raw.conversations WHERE contact_id = ?{org_filter}",
            [int(contact_id)] + org_params).fetchall())
    return found


def _changed(conn, sql: str, params: list) -> int:
    return conn.execute(sql, params).fetchall()[0][0]


def erase_contact(conn, org_id: int, contact_id: int, contact_id_hash: str, now: datetime,
                  contact_event_types: Iterable[str]) -> tuple[list[int], dict[str, int]]:
    """Erase one contact of one org: blank the message bodies of its conversations and the
    stored webhook payloads about them or about the contact, unlink it from conversations and
    participants, delete its row, and record its hash (with every conversation it ever had) in
    `raw.erased_contacts`. Returns its conversations and the rows changed per column/table."""
    conversations = [r[0] for r in conn.execute(
        "SELECT conversation_id FROM raw.conversations WHERE org_id = ? AND contact_id = ?",
        [org_id, contact_id]).fetchall()]
    ids = conversations or [-1]
    steps = [
        ("raw.messages.body", "UPDATE raw.messages SET body = NULL, synced_at = ? WHERE org_id = ? "
         "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [now, org_id, ids]),
        ("raw.webhook_events.payload", "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? "
         "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org_id, ids]),
        # Contact events name the contact, not a conversation (their diffs carry its data).
        ("raw.webhook_events.payload", "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? "
         "AND payload IS NOT NULL AND event_type IN (SELECT unnest(?::VARCHAR[])) AND ? IN ("
         "json_extract_string(payload, '$.data.endUserId'), "
         "json_extract_string(payload, '$.data.contactId'), "
         "json_extract_string(payload, '$.data.id'))", [org_id, sorted(contact_event_types), str(contact_id)]),
        # synced_at moves so the incremental marts rebuild these conversations' rows.
        ("raw.conversations.contact_id", "UPDATE raw.conversations SET contact_id = NULL, synced_at = ? "
         "WHERE org_id = ? AND contact_id = ?", [now, org_id, contact_id]),
        # Meetings the contact scheduled stay (the meeting counts add up) without the contact,
        # its notes' hash or its time zone; goals it met stay without it.
        ("raw.meetings", "UPDATE raw.meetings SET scheduler_contact_id = NULL, meeting_notes_hash = NULL, "
         "end_user_time_zone = NULL, synced_at = ? WHERE org_id = ? AND scheduler_contact_id = ?",
         [now, org_id, contact_id]),
        ("raw.playbook_goals.contact_id", "UPDATE raw.playbook_goals SET contact_id = NULL, synced_at = ? "
         "WHERE org_id = ? AND contact_id = ?", [now, org_id, contact_id]),
        ("raw.webhook_events.payload", "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? "
         "AND payload IS NOT NULL AND event_type IN ('new_meeting', 'playbook_goal_met') AND ? IN ("
         "json_extract_string(payload, '$.data.schedulerId'), "
         "json_extract_string(payload, '$.data.endUserId'))", [org_id, str(contact_id)]),
        ("raw.participants", "DELETE FROM raw.participants WHERE org_id = ? AND participant_type = 'contact' "
         "AND participant_id = ?", [org_id, contact_id]),
        ("raw.contacts", "DELETE FROM raw.contacts WHERE org_id = ? AND contact_id = ?", [org_id, contact_id]),
    ]
    counts: dict[str, int] = {}
    for name, sql, params in steps:
        counts[name] = counts.get(name, 0) + _changed(conn, sql, params)
    # A repeated erasure keeps the conversations an earlier one recorded (the contact's link is
    # gone from them by now, and follow-up erasures look them up here).
    prior = conn.execute("SELECT conversation_ids FROM raw.erased_contacts WHERE org_id = ? "
                         "AND contact_id_hash = ?", [org_id, contact_id_hash]).fetchall()
    recorded = sorted(set(conversations) | set(json.loads(prior[0][0] or "[]") if prior else []))
    conn.execute("INSERT OR REPLACE INTO raw.erased_contacts VALUES (?, ?, ?, ?)",
                 [org_id, contact_id_hash, now, json.dumps(recorded)])
    return conversations, counts


def clear_contact_events_mentioning(conn, org_id: int, email: str, contact_event_types: Iterable[str]) -> int:
    """Blank the stored contact events of this org whose payload carries `email` (a request by
    email for a contact the warehouse never stored); returns how many."""
    return _changed(
        conn, "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? AND payload IS NOT NULL "
        "AND event_type IN (SELECT unnest(?::VARCHAR[])) AND contains(lower(payload), ?)",
        [org_id, sorted(contact_event_types), email.strip().lower()])
