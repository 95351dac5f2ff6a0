"""GDPR erasure: a contact's personal data leaves the warehouse, the files under
$DRIFT_PIPELINE_HOME and the serving copy, and stays out of later syncs.

What is erased: the contact row; the bodies of every message in the contact's conversations
(agents quote visitors); the contact's link on conversations and participants; stored webhook
payloads and inbox/processed/quarantine lines about those conversations. What stays: ids of
conversations and messages, timestamps and authorship classes, so the metrics still add up.
A salted hash of the contact id is kept in `raw.erased_contacts` so a later sync suppresses it.
The conversations' transcripts are re-rendered without the erased text (`raw.transcripts`,
transcript exports under the home, `serving/transcripts.duckdb`), every erasure is a
`raw.erasures` audit row (counts and salted hashes only), and `erase` compacts the warehouse
file so the blanked text does not survive in freed pages.
"""

from __future__ import annotations

import json
import logging


from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.pii import hash_pii
from drift_pipeline.settings import Settings, UsageError
from drift_pipeline.timeutil import utcnow
from drift_pipeline.transcripts.store import refresh_transcripts
from drift_pipeline.warehouse import audit
from drift_pipeline.webhooks.events import CONTACT_EVENT_TYPES

log = logging.getLogger(__name__)


def erased_contact_hashes(conn, org_id: int) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT contact_id_hash FROM raw.erased_contacts WHERE org_id = ?", [org_id]).fetchall()}


def warehouse_org_ids(conn) -> list[int]:
    """The Drift orgs the warehouse holds data of."""
    return [r[0] for r in conn.execute(
        "SELECT org_id FROM raw.conversations UNION SELECT org_id FROM raw.users "
        "UNION SELECT org_id FROM raw.contacts ORDER BY 1").fetchall()]


def previously_erased_conversations(conn, settings: Settings, contact_id: int,
                                    org_id: int | None = None) -> set[tuple[int, int]]:
    """(org_id, conversation_id) recorded when this contact was erased before (e.g. by the
    webhook path), so a follow-up `erase --contact-id` still finds the files about them."""
    keys = set()
    for org, conversation_ids in conn.execute(
            "SELECT org_id, conversation_ids FROM raw.erased_contacts WHERE contact_id_hash = ? "
            "AND (? IS NULL OR org_id = ?)",
            [hash_pii(contact_id, settings.secret("pii_salt")), org_id, org_id]).fetchall():
        keys |= {(org, c) for c in json.loads(conversation_ids or "[]")}
    return keys


def _changed(conn, sql: str, params: list) -> int:
    return conn.execute(sql, params).fetchall()[0][0]


def erase_in_warehouse(conn, settings: Settings, *, org_id: int | None, contact_id: int | None = None,
                       email: str | None = None, trigger: str, erasure_id: str | None = None) -> list[dict]:
    """Erase in the warehouse and record it in `raw.erasures` (under `erasure_id` when given);
    returns what was erased (org, contact, conversations). Idempotent."""
    salt = settings.secret("pii_salt")
    conditions, params = [], []
    if contact_id is not None:
        conditions.append("contact_id = ?")
        params.append(int(contact_id))
    if email:
        conditions.append("email_hash = ?")
        params.append(hash_pii(email, salt))
    if not conditions:
        raise UsageError("erase needs --contact-id or --email")
    org_filter = "" if org_id is None else " AND org_id = ?"
    org_params = [] if org_id is None else [org_id]
    targets = set(conn.execute(
        f"SELECT org_id, contact_id FROM raw.contacts WHERE ({' OR '.join(conditions)}){org_filter}",
        params + org_params).fetchall())
    if contact_id is not None:
        targets |= set(conn.execute(
            f"SELECT DISTINCT org_id, contact_id FROM raw.conversations WHERE contact_id = ?{org_filter}",
            [int(contact_id)] + org_params).fetchall())
        if org_id is not None:
            targets.add((org_id, int(contact_id)))
    now = utcnow()
    erased = []
    counts = dict.fromkeys(("raw.messages.body", "raw.webhook_events.payload", "raw.conversations.contact_id",
                            "raw.participants", "raw.contacts", "raw.transcripts"), 0)
    conn.execute("BEGIN TRANSACTION")
    try:
        for org, contact in targets:
            conversations = [r[0] for r in conn.execute(
                "SELECT conversation_id FROM raw.conversations WHERE org_id = ? AND contact_id = ?",
                [org, contact]).fetchall()]
            ids = conversations or [-1]
            counts["raw.messages.body"] += _changed(
                conn, "UPDATE raw.messages SET body = NULL, synced_at = ? WHERE org_id = ? "
                "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [now, org, ids])
            counts["raw.webhook_events.payload"] += _changed(
                conn, "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? "
                "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org, ids])
            # Contact events name the contact, not a conversation (their diffs carry its data).
            counts["raw.webhook_events.payload"] += _changed(
                conn, "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? AND payload IS NOT NULL "
                "AND event_type IN (SELECT unnest(?::VARCHAR[])) AND ? IN ("
                "json_extract_string(payload, '$.data.endUserId'), "
                "json_extract_string(payload, '$.data.contactId'), "
                "json_extract_string(payload, '$.data.id'))",
                [org, sorted(CONTACT_EVENT_TYPES), str(contact)])
            # synced_at moves so the incremental marts rebuild these conversations' rows.
            counts["raw.conversations.contact_id"] += _changed(
                conn, "UPDATE raw.conversations SET contact_id = NULL, synced_at = ? "
                "WHERE org_id = ? AND contact_id = ?", [now, org, contact])
            counts["raw.participants"] += _changed(
                conn, "DELETE FROM raw.participants WHERE org_id = ? AND participant_type = 'contact' "
                "AND participant_id = ?", [org, contact])
            counts["raw.contacts"] += _changed(
                conn, "DELETE FROM raw.contacts WHERE org_id = ? AND contact_id = ?", [org, contact])
            # A repeated erasure keeps the conversations an earlier one recorded (the contact's
            # link is gone from them by now, and follow-up erasures look them up here).
            prior = conn.execute("SELECT conversation_ids FROM raw.erased_contacts WHERE org_id = ? "
                                 "AND contact_id_hash = ?", [org, hash_pii(contact, salt)]).fetchall()
            recorded = sorted(set(conversations) | set(json.loads(prior[0][0] or "[]") if prior else []))
            conn.execute("INSERT OR REPLACE INTO raw.erased_contacts VALUES (?, ?, ?, ?)",
                         [org, hash_pii(contact, salt), now, json.dumps(recorded)])
            counts["raw.transcripts"] += refresh_transcripts(conn, [(org, c) for c in conversations]).rendered
            erased.append({"org_id": org, "contact_id": contact, "conversation_ids": conversations})
        if email and org_id is not None:
            # A request by email for a contact the warehouse never stored still clears the
            # stored contact events that carry the address.
            counts["raw.webhook_events.payload"] += _changed(
                conn, "UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? AND payload IS NOT NULL "
                "AND event_type IN (SELECT unnest(?::VARCHAR[])) AND contains(lower(payload), ?)",
                [org_id, sorted(CONTACT_EVENT_TYPES), email.strip().lower()])
        # What was asked, hashed: the contact ids found, else the identifier given.
        subjects = [hash_pii(contact, salt) for _, contact in sorted(targets)] or \
            [hash_pii(contact_id if contact_id is not None else email, salt)]
        audit.record_erasure(conn, kind=audit.CONTACT, trigger=trigger, org_id=org_id, started_at=now,
                             counts=counts, subject_hashes=subjects, erasure_id=erasure_id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    log.info("erased %d contact(s) from the warehouse", len(erased))
    return erased


def _mentions(record: dict, contact_ids: set[int], conversation_ids: set[int], email: str | None,
              org_id: int | None = None) -> bool:
    payload = record.get("payload") if isinstance(record.get("payload"), dict) else record
    if org_id is not None and str(payload.get("orgId", org_id)) != str(org_id):
        return False  # ids are per workspace: the same ids in another org are someone else
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    author = data.get("author") if isinstance(data.get("author"), dict) else {}
    if data.get("conversationId") in conversation_ids or data.get("id") in conversation_ids:
        return True
    if data.get("contactId") in contact_ids or (author.get("type") == "contact" and author.get("id") in contact_ids):
        return True
    # Contact events name the contact as endUserId (or id), possibly as a numeric string.
    named = {str(data.get(key)) for key in ("endUserId", "contactId") if data.get(key) is not None}
    if payload.get("type") in CONTACT_EVENT_TYPES and data.get("id") is not None:
        named.add(str(data["id"]))
    if named & {str(c) for c in contact_ids}:
        return True
    return bool(email) and email.lower() in json.dumps(payload).lower()


def erase_files(settings: Settings, contact_ids: set[int], conversation_ids: set[int], email: str | None,
                org_id: int | None = None) -> int:
    """Drop lines about the contact from inbox, processed and quarantine files (atomic rewrite);
    with `org_id`, only lines of that org (or naming none)."""
    removed = 0
    for folder in (settings.inbox_dir, settings.processed_dir, settings.quarantine_dir):
        if not folder.exists():
            continue
        for path in sorted(folder.glob("*.json")):
            lines = path.read_text(errors="replace").splitlines()
            kept = []
            for line in lines:
                try:
                    record = json.loads(line)
                    hit = isinstance(record, dict) and _mentions(record, contact_ids, conversation_ids, email, org_id)
                except ValueError:
                    hit = bool(email) and email.lower() in line.lower()
                if hit:
                    removed += 1
                else:
                    kept.append(line)
            if len(kept) != len(lines):
                if kept:
                    atomic_write_text(path, "\n".join(kept) + "\n")
                else:
                    path.unlink()
    return removed
