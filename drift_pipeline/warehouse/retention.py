"""Warehouse SQL for retention: blanking old message bodies and webhook payloads, and
compacting the file so the blanked text leaves the disk too."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path

import duckdb

from drift_pipeline.fsutil import fsync_dir


def blank_message_bodies_before(conn, cutoff: datetime) -> list[tuple[int, int]]:
    """Set `raw.messages.body` to NULL for messages created before `cutoff`; returns the
    (org_id, conversation_id) of every message blanked (one entry per message).

    `synced_at` is left alone on purpose: no mart reads bodies, so the marts need no rebuild.
    """
    return [tuple(r) for r in conn.execute(
        "UPDATE raw.messages SET body = NULL WHERE created_at < ? AND body IS NOT NULL "
        "RETURNING org_id, conversation_id", [cutoff]).fetchall()]


def blank_meeting_notes_before(conn, cutoff: datetime) -> int:
    """Drop the hash of `meetingNotes` (free text written at booking) of meetings booked before
    `cutoff`; returns how many. No mart reads it: `synced_at` stays."""
    return conn.execute("UPDATE raw.meetings SET meeting_notes_hash = NULL WHERE scheduled_at < ? "
                        "AND meeting_notes_hash IS NOT NULL", [cutoff]).fetchall()[0][0]


def webhook_payloads_with_bodies(conn) -> list[tuple[int, str, str, datetime | None]]:
    """(org_id, event_id, payload, received_at) of stored webhook events carrying a message body."""
    return conn.execute(
        "SELECT org_id, event_id, payload, received_at FROM raw.webhook_events "
        "WHERE payload LIKE '%\"body\":\"%' ORDER BY org_id, event_id").fetchall()


def set_webhook_payload(conn, org_id: int, event_id: str, payload: str) -> None:
    conn.execute("UPDATE raw.webhook_events SET payload = ? WHERE org_id = ? AND event_id = ?",
                 [payload, org_id, event_id])


def compact(path: Path) -> int:
    """Rewrite the DuckDB file at `path` into a fresh one and rename it into place.

    DuckDB reuses freed pages but never zeroes them: text blanked by an UPDATE stays readable in
    the file's bytes until overwritten. Copying the database into a new file carries only live
    data. The connection holding the file's lock stays open across the rename, so no other
    process can open (and write to) the old file meanwhile. Returns bytes before minus after.
    """
    before = path.stat().st_size
    fresh = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    conn = duckdb.connect(str(path))
    try:
        conn.execute("CHECKPOINT")
        catalog = conn.execute("SELECT current_database()").fetchall()[0][0]
        conn.execute(f"ATTACH '{fresh}' AS compacted")
        try:
            conn.execute(f"COPY FROM DATABASE {catalog} TO compacted")
        finally:
            conn.execute("DETACH compacted")
        with open(fresh, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(fresh, path)
        fsync_dir(path.parent)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
        Path(str(fresh) + ".wal").unlink(missing_ok=True)
    return before - path.stat().st_size
