"""GDPR erasure: a contact's personal data leaves the warehouse, the files under
$DRIFT_PIPELINE_HOME and the serving copy, and stays out of later syncs.

What is erased: the contact row; the bodies of every message in the contact's conversations
(agents quote visitors); the contact's link on conversations and participants; stored webhook
payloads and inbox/processed/quarantine lines about those conversations. What stays: ids of
conversations and messages, timestamps and authorship classes, so the metrics still add up.
A salted hash of the contact id is kept in `raw.erased_contacts` so a later sync suppresses it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb

from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.ingest import transform as tf
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse import schema

log = logging.getLogger(__name__)


def erased_contact_hashes(conn, org_id: int) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT contact_id_hash FROM raw.erased_contacts WHERE org_id = ?", [org_id]).fetchall()}


def erase_in_warehouse(conn, settings: Settings, *, org_id: int | None, contact_id: int | None = None,
                       email: str | None = None) -> list[dict]:
    """Erase in the warehouse; returns what was erased (org, contact, conversations). Idempotent."""
    salt = settings.secret("pii_salt")
    conditions, params = [], []
    if contact_id is not None:
        conditions.append("contact_id = ?")
        params.append(int(contact_id))
    if email:
        conditions.append("email_hash = ?")
        params.append(tf.hash_pii(email, salt))
    if not conditions:
        raise ValueError("erase needs --contact-id or --email")
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
    now = tf.utcnow()
    erased = []
    conn.execute("BEGIN TRANSACTION")
    try:
        for org, contact in targets:
            conversations = [r[0] for r in conn.execute(
                "SELECT conversation_id FROM raw.conversations WHERE org_id = ? AND contact_id = ?",
                [org, contact]).fetchall()]
            ids = conversations or [-1]
            conn.execute("UPDATE raw.messages SET body = NULL, synced_at = ? WHERE org_id = ? "
                         "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [now, org, ids])
            conn.execute("UPDATE raw.webhook_events SET payload = NULL WHERE org_id = ? "
                         "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org, ids])
            # synced_at moves so the incremental marts rebuild these conversations' rows.
            conn.execute("UPDATE raw.conversations SET contact_id = NULL, synced_at = ? "
                         "WHERE org_id = ? AND contact_id = ?", [now, org, contact])
            conn.execute("DELETE FROM raw.participants WHERE org_id = ? AND participant_type = 'contact' "
                         "AND participant_id = ?", [org, contact])
            conn.execute("DELETE FROM raw.contacts WHERE org_id = ? AND contact_id = ?", [org, contact])
            conn.execute("INSERT OR REPLACE INTO raw.erased_contacts VALUES (?, ?, ?, ?)",
                         [org, tf.hash_pii(contact, salt), now, json.dumps(conversations)])
            erased.append({"org_id": org, "contact_id": contact, "conversation_ids": conversations})
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    log.info("erased %d contact(s) from the warehouse", len(erased))
    return erased


def _mentions(record: dict, contact_ids: set[int], conversation_ids: set[int], email: str | None) -> bool:
    payload = record.get("payload") if isinstance(record.get("payload"), dict) else record
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    author = data.get("author") if isinstance(data.get("author"), dict) else {}
    if data.get("conversationId") in conversation_ids or data.get("id") in conversation_ids:
        return True
    if data.get("contactId") in contact_ids or (author.get("type") == "contact" and author.get("id") in contact_ids):
        return True
    return bool(email) and email.lower() in json.dumps(payload).lower()


def erase_files(settings: Settings, contact_ids: set[int], conversation_ids: set[int], email: str | None) -> int:
    """Drop lines about the contact from inbox, processed and quarantine files (atomic rewrite)."""
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
                    hit = isinstance(record, dict) and _mentions(record, contact_ids, conversation_ids, email)
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


def erase(settings: Settings, *, contact_id: int | None = None, email: str | None = None) -> dict:
    """`drift-pipeline erase`: warehouse, files, then rebuild the marts and republish."""
    erased: list[dict] = []
    if settings.warehouse_path.exists():
        conn = duckdb.connect(str(settings.warehouse_path))
        try:
            schema.create_raw_schema(conn)
            erased = erase_in_warehouse(conn, settings, org_id=None, contact_id=contact_id, email=email)
        finally:
            conn.close()
    contact_ids = {e["contact_id"] for e in erased} | ({int(contact_id)} if contact_id is not None else set())
    conversation_ids = {c for e in erased for c in e["conversation_ids"]}
    lines = erase_files(settings, contact_ids, conversation_ids, email)
    published = False
    if erased and (settings.serving_dir / "analytics.duckdb").exists():
        from drift_pipeline.webhooks.apply import refresh_marts

        refresh_marts(settings)
        published = True
    return {"contacts_erased": len(erased), "file_lines_removed": lines, "serving_copy_republished": published}
