"""GDPR erasure: a contact's personal data leaves the warehouse, the files under
$DRIFT_PIPELINE_HOME and the serving copy, and stays out of later syncs.

What is erased: the contact row; the bodies of every message in the contact's conversations
(agents quote visitors); the contact's link on conversations, participants, the meetings it
booked (with their notes' hash and time zone) and the playbook goals it met; stored webhook
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
from drift_pipeline.warehouse import erasure as warehouse_erasure
from drift_pipeline.warehouse.load import transaction
from drift_pipeline.webhooks.events import CONTACT_EVENT_TYPES

log = logging.getLogger(__name__)


def previously_erased_conversations(conn, settings: Settings, contact_id: int,
                                    org_id: int | None = None) -> set[tuple[int, int]]:
    """(org_id, conversation_id) recorded when this contact was erased before (e.g. by the
    webhook path), so a follow-up `erase --contact-id` still finds the files about them."""
    return warehouse_erasure.erased_conversations(
        conn, hash_pii(contact_id, settings.secret("pii_salt")), org_id)


def erase_in_warehouse(conn, settings: Settings, *, org_id: int | None, contact_id: int | None = None,
                       email: str | None = None, trigger: str, erasure_id: str | None = None) -> list[dict]:
    """Erase in the warehouse and record it in `raw.erasures` (under `erasure_id` when given);
    returns what was erased (org, contact, conversations). Idempotent; one transaction."""
    salt = settings.secret("pii_salt")
    if contact_id is None and not email:
        raise UsageError("erase needs --contact-id or --email")
    targets = warehouse_erasure.contacts_named(
        conn, contact_id=contact_id, email_hash=hash_pii(email, salt) if email else None, org_id=org_id)
    if contact_id is not None and org_id is not None:
        targets.add((org_id, int(contact_id)))
    now = utcnow()
    erased = []
    counts = dict.fromkeys(("raw.messages.body", "raw.webhook_events.payload", "raw.conversations.contact_id",
                            "raw.participants", "raw.contacts", "raw.transcripts", "raw.meetings",
                            "raw.playbook_goals.contact_id"), 0)
    with transaction(conn):
        for org, contact in targets:
            conversations, changed = warehouse_erasure.erase_contact(
                conn, org, contact, hash_pii(contact, salt), now, CONTACT_EVENT_TYPES)
            for name, count in changed.items():
                counts[name] += count
            counts["raw.transcripts"] += refresh_transcripts(conn, [(org, c) for c in conversations]).rendered
            erased.append({"org_id": org, "contact_id": contact, "conversation_ids": conversations})
        if email and org_id is not None:
            # A request by email for a contact the warehouse never stored still clears the
            # stored contact events that carry the address.
            counts["raw.webhook_events.payload"] += warehouse_erasure.clear_contact_events_mentioning(
                conn, org_id, email, CONTACT_EVENT_TYPES)
        # What was asked, hashed: the contact ids found, else the identifier given.
        subjects = [hash_pii(contact, salt) for _, contact in sorted(targets)] or \
            [hash_pii(contact_id if contact_id is not None else email, salt)]
        audit.record_erasure(conn, kind=audit.CONTACT, trigger=trigger, org_id=org_id, started_at=now,
                             counts=counts, subject_hashes=subjects, erasure_id=erasure_id)
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
    # Meetings name the contact who booked as schedulerId.
    named = {str(data.get(key)) for key in ("endUserId", "contactId", "schedulerId") if data.get(key) is not None}
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
