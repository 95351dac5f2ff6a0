"""Warehouse SQL for transcripts: what rendering reads, `raw.transcripts`, and the transcript
export jobs in `raw.exports`.

Rendering itself (plain data in, text out) lives in `drift_pipeline/transcripts/`; this module
only moves rows in and out of DuckDB.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

from drift_pipeline.warehouse import schema
from drift_pipeline.warehouse.load import upsert

Key = tuple[int, int]  # (org_id, conversation_id)

EXPORT_KIND = "transcripts"


def _by_org(keys: Iterable[Key]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for org_id, conversation_id in keys:
        grouped.setdefault(int(org_id), []).append(int(conversation_id))
    return grouped


def conversation_inputs(conn, keys: Iterable[Key]) -> dict[Key, dict]:
    """Everything rendering reads for these conversations, as plain dicts.

    {key: {"conversation": {...}, "messages": [...] oldest first, "participants": [...],
    "users": {user_id: {"name", "is_bot"}}}}. Keys not in `raw.conversations` are absent.
    """
    out: dict[Key, dict] = {}
    for org_id, ids in _by_org(keys).items():
        users = {
            user_id: {"name": name, "is_bot": bool(is_bot)}
            for user_id, name, is_bot in conn.execute(
                "SELECT user_id, name, is_bot FROM raw.users WHERE org_id = ?", [org_id]).fetchall()
        }
        for cid, status, contact_id, created_at, updated_at, tags in conn.execute(
            "SELECT conversation_id, status, contact_id, created_at, updated_at, tags "
            "FROM raw.conversations WHERE org_id = ? AND conversation_id IN (SELECT unnest(?::BIGINT[]))",
            [org_id, ids],
        ).fetchall():
            out[(org_id, cid)] = {
                "conversation": {"org_id": org_id, "conversation_id": cid, "status": status,
                                 "contact_id": contact_id, "created_at": created_at,
                                 "updated_at": updated_at, "tags": list(tags or [])},
                "messages": [], "participants": [], "users": users,
            }
        for row in conn.execute(
            "SELECT conversation_id, message_id, created_at, message_type, author_type, author_id, "
            "is_bot, body, edited_message_id, edit_type FROM raw.messages "
            "WHERE org_id = ? AND conversation_id IN (SELECT unnest(?::BIGINT[])) "
            "ORDER BY conversation_id, created_at, message_id",
            [org_id, ids],
        ).fetchall():
            inputs = out.get((org_id, row[0]))
            if inputs is not None:
                inputs["messages"].append(dict(zip(
                    ("conversation_id", "message_id", "created_at", "message_type", "author_type",
                     "author_id", "is_bot", "body", "edited_message_id", "edit_type"), row)))
        for cid, participant_id, participant_type, is_current in conn.execute(
            "SELECT conversation_id, participant_id, participant_type, is_current FROM raw.participants "
            "WHERE org_id = ? AND conversation_id IN (SELECT unnest(?::BIGINT[])) "
            "ORDER BY conversation_id, participant_type DESC, participant_id",
            [org_id, ids],
        ).fetchall():
            inputs = out.get((org_id, cid))
            if inputs is not None:
                inputs["participants"].append({"id": participant_id, "type": participant_type,
                                               "is_current": bool(is_current)})
    return out


def _window_sql(created_from: datetime | None, created_before: datetime | None, status: str | None):
    conditions, params = [], []
    if created_from is not None:
        conditions.append("c.created_at >= ?")
        params.append(created_from)
    if created_before is not None:
        conditions.append("c.created_at < ?")
        params.append(created_before)
    if status is not None:
        conditions.append("c.status = ?")
        params.append(status)
    return conditions, params


def stale_transcript_keys(conn, *, created_from: datetime | None = None,
                          created_before: datetime | None = None) -> list[Key]:
    """Conversations whose transcript is missing or whose raw rows were written since it was
    last checked (a sync, webhook or erasure touched them)."""
    conditions, params = _window_sql(created_from, created_before, None)
    conditions.append(
        "(t.conversation_id IS NULL OR c.synced_at > t.checked_at "
        " OR EXISTS (SELECT 1 FROM raw.messages m WHERE m.org_id = c.org_id "
        "            AND m.conversation_id = c.conversation_id AND m.synced_at > t.checked_at) "
        " OR EXISTS (SELECT 1 FROM raw.participants p WHERE p.org_id = c.org_id "
        "            AND p.conversation_id = c.conversation_id AND p.synced_at > t.checked_at))")
    return [tuple(r) for r in conn.execute(
        "SELECT c.org_id, c.conversation_id FROM raw.conversations c "
        "LEFT JOIN raw.transcripts t ON t.org_id = c.org_id AND t.conversation_id = c.conversation_id "
        f"WHERE {' AND '.join(conditions)} ORDER BY 1, 2", params).fetchall()]


def stored_hashes(conn, keys: Iterable[Key]) -> dict[Key, str]:
    """The input hash stored for each of these conversations that has a transcript."""
    out = {}
    for org_id, ids in _by_org(keys).items():
        for cid, input_hash in conn.execute(
            "SELECT conversation_id, input_hash FROM raw.transcripts "
            "WHERE org_id = ? AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org_id, ids],
        ).fetchall():
            out[(org_id, cid)] = input_hash
    return out


def save_transcripts(conn, changed: list[dict], unchanged: Iterable[Key], checked_at: datetime) -> None:
    """Upsert re-rendered transcripts; mark the unchanged ones as checked (text untouched)."""
    upsert(conn, schema.TRANSCRIPTS, changed)
    for org_id, ids in _by_org(unchanged).items():
        conn.execute("UPDATE raw.transcripts SET checked_at = ? WHERE org_id = ? "
                     "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [checked_at, org_id, ids])


def transcript_keys_with_messages_before(conn, cutoff: datetime) -> list[Key]:
    """Conversations with a stored transcript and a message created before `cutoff`."""
    return [tuple(r) for r in conn.execute(
        "SELECT DISTINCT t.org_id, t.conversation_id FROM raw.transcripts t "
        "JOIN raw.messages m ON m.org_id = t.org_id AND m.conversation_id = t.conversation_id "
        "WHERE m.created_at < ? ORDER BY 1, 2", [cutoff]).fetchall()]


# --- export jobs (`raw.exports`, kind 'transcripts') ------------------------------------------

def export_keys(conn, *, created_from: datetime | None, created_before: datetime | None,
                status: str | None, changed_after: datetime | None, changed_until: datetime,
                after_key: Key | None) -> list[Key]:
    """The conversations an export job writes, in key order, after its checkpoint."""
    conditions, params = _window_sql(created_from, created_before, status)
    conditions.append("t.rendered_at <= ?")
    params.append(changed_until)
    if changed_after is not None:
        conditions.append("t.rendered_at > ?")
        params.append(changed_after)
    if after_key is not None:
        conditions.append("(c.org_id, c.conversation_id) > (?, ?)")
        params.extend(after_key)
    return [tuple(r) for r in conn.execute(
        "SELECT c.org_id, c.conversation_id FROM raw.conversations c "
        "JOIN raw.transcripts t ON t.org_id = c.org_id AND t.conversation_id = c.conversation_id "
        f"WHERE {' AND '.join(conditions)} ORDER BY 1, 2", params).fetchall()]


def latest_export_job(conn, filters: str) -> dict | None:
    """The newest transcript export job with these filters (any outcome), as a dict."""
    rows = conn.execute(
        "SELECT job_id, output_dir, changed_after, changed_until, page_token_checkpoint, pages, success, "
        "conversations_written FROM raw.exports WHERE kind = ? AND filters = ? "
        "ORDER BY started_at DESC LIMIT 1", [EXPORT_KIND, filters]).fetchall()
    if not rows:
        return None
    return dict(zip(("job_id", "output_dir", "changed_after", "changed_until", "checkpoint", "pages",
                     "success", "conversations_written"), rows[0]))


def last_successful_watermark(conn, filters: str) -> datetime | None:
    """`changed_until` of the last successful export with these filters: the next one starts there."""
    rows = conn.execute(
        "SELECT changed_until FROM raw.exports WHERE kind = ? AND filters = ? AND success "
        "ORDER BY changed_until DESC LIMIT 1", [EXPORT_KIND, filters]).fetchall()
    return rows[0][0] if rows else None


def start_export_job(conn, *, job_id: str, filters: str, output_dir: str, started_at: datetime,
                     changed_after: datetime | None, changed_until: datetime) -> None:
    upsert(conn, schema.EXPORTS, [{
        "job_id": job_id, "kind": EXPORT_KIND, "filters": filters, "output_dir": output_dir,
        "started_at": started_at, "changed_after": changed_after, "changed_until": changed_until,
        "pages": 0, "files_written": 0, "conversations_written": 0,
    }])


def commit_export_chunk(conn, job_id: str, chunk: int, last_key: Key, conversations: int) -> None:
    """Record that chunk number `chunk` (ending at `last_key`) is durably written."""
    conn.execute(
        "UPDATE raw.exports SET page_token_checkpoint = ?, pages = ?, files_written = ?, "
        "conversations_written = conversations_written + ? WHERE job_id = ?",
        [json.dumps({"chunk": chunk, "org_id": last_key[0], "conversation_id": last_key[1]}),
         chunk, chunk, conversations, job_id])


def finish_export_job(conn, job_id: str, finished_at: datetime, *, success: bool,
                      error_code: str | None = None) -> None:
    conn.execute("UPDATE raw.exports SET finished_at = ?, success = ?, error_code = ? WHERE job_id = ?",
                 [finished_at, success, error_code, job_id])


def export_output_dirs(conn) -> list[str]:
    """Every folder a transcript export has written to."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT output_dir FROM raw.exports WHERE kind = ? AND output_dir IS NOT NULL "
        "ORDER BY 1", [EXPORT_KIND]).fetchall()]


def copy_for_qa_sql(catalog: str) -> str:
    """The rows of the opt-in QA copy (`serving/transcripts.duckdb`), read from an attached
    warehouse: conversation metadata and the stored chat-only transcript, no contact link."""
    return (
        "SELECT c.org_id, c.conversation_id, c.status, c.inbox_id, c.created_at, c.updated_at, c.tags, "
        "t.message_count, t.transcript, t.rendered_at "
        f"FROM {catalog}.raw.conversations c JOIN {catalog}.raw.transcripts t "
        "ON t.org_id = c.org_id AND t.conversation_id = c.conversation_id "
        "ORDER BY c.org_id, c.conversation_id"
    )
