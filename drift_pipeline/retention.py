"""Retention: message text older than N days leaves the warehouse, the files under
$DRIFT_PIPELINE_HOME and the transcripts copy; every metric stays as it was.

What goes: `raw.messages.body` of messages created before the cutoff; the same bodies inside
stored webhook payloads (`raw.webhook_events.payload`) and inbox/processed/quarantine files;
the rendered transcripts of those conversations (re-rendered with a placeholder, in
`raw.transcripts`, in transcript exports under the home and in `serving/transcripts.duckdb`).
What stays: every id, timestamp, type and author of every message, which is all the marts read,
so the numbers do not move. The warehouse file is then rewritten (compacted) so the blanked
text is not left in freed pages. Each pass is one `raw.erasures` row with its counts.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta


from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.serving import publish_transcripts_copy
from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ts_to_ms, utcnow
from drift_pipeline.transcripts.export import rewrite_exported_lines
from drift_pipeline.transcripts.store import refresh_transcripts
from drift_pipeline.warehouse import audit
from drift_pipeline.warehouse import retention as wr
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.load import transaction

log = logging.getLogger(__name__)


def scrub_bodies(value, cutoff_ms: int, time_ms: int | None):
    """`value` (parsed JSON) with the `body` of every message created before `cutoff_ms` set
    to None, and how many were blanked.

    A message's time is its own `createdAt`; parts without one (preMessages, a payload without
    a time) inherit the nearest enclosing time, ultimately `time_ms` (when it was received).
    """
    if isinstance(value, list):
        scrubbed, total = [], 0
        for item in value:
            item, count = scrub_bodies(item, cutoff_ms, time_ms)
            scrubbed.append(item)
            total += count
        return scrubbed, total
    if not isinstance(value, dict):
        return value, 0
    created = value.get("createdAt")
    here = created if isinstance(created, int) and not isinstance(created, bool) else time_ms
    out, total = {}, 0
    for key, item in value.items():
        if key == "body" and isinstance(item, str) and here is not None and here < cutoff_ms:
            out[key] = None
            total += 1
        else:
            out[key], count = scrub_bodies(item, cutoff_ms, here)
            total += count
    return out, total


def _scrub_webhook_events(conn, cutoff_ms: int) -> int:
    changed = 0
    for org_id, event_id, payload, received_at in wr.webhook_payloads_with_bodies(conn):
        received_ms = ts_to_ms(received_at) if received_at is not None else None
        scrubbed, count = scrub_bodies(json.loads(payload), cutoff_ms, received_ms)
        if count:
            # Same canonical form the receiver stored; the event keeps its id (dedupe).
            wr.set_webhook_payload(conn, org_id, event_id,
                                   json.dumps(scrubbed, sort_keys=True, separators=(",", ":"), ensure_ascii=True))
            changed += 1
    return changed


def scrub_webhook_files(settings: Settings, cutoff: datetime) -> dict[str, int]:
    """Blank old bodies in inbox, processed and quarantine files (atomic rewrite of each file
    that changes). A line that is not JSON cannot be dated: it is dropped when its file is
    older than the cutoff. Returns bodies blanked plus lines dropped, per folder."""
    cutoff_ms = ts_to_ms(cutoff)
    counts = {}
    for folder in (settings.inbox_dir, settings.processed_dir, settings.quarantine_dir):
        changed = 0
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            file_ms = int(path.stat().st_mtime * 1000)
            lines, kept, file_changes = path.read_text(errors="replace").splitlines(), [], 0
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    if file_ms < cutoff_ms:
                        file_changes += 1
                        continue
                    kept.append(line)
                    continue
                received = record.get("received_at") if isinstance(record, dict) else None
                received = received if isinstance(received, int) and not isinstance(received, bool) else file_ms
                scrubbed, count = scrub_bodies(record, cutoff_ms, received)
                file_changes += count
                # The receiver's encoding: ASCII JSON, one line per record.
                kept.append(json.dumps(scrubbed, separators=(",", ":"), ensure_ascii=True) if count else line)
            if file_changes:
                if kept:
                    atomic_write_text(path, "\n".join(kept) + "\n")
                else:
                    path.unlink()
                changed += file_changes
        counts[f"files.{folder.name}"] = changed
    return counts


def run_retention(settings: Settings, days: int, *, trigger: str, now: datetime | None = None) -> dict:
    """`drift-pipeline retention --days N` (and the weekly schedule): blank message text older
    than `days` days everywhere the pipeline keeps it; returns the counts recorded in
    `raw.erasures`."""
    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    started = utcnow()
    cutoff = (now or started) - timedelta(days=days)
    counts: dict[str, int] = {}
    erasure_id = None
    if settings.warehouse_path.exists():
        with open_warehouse(settings) as conn:
            with transaction(conn):
                blanked = wr.blank_message_bodies_before(conn, cutoff)
                counts["raw.messages.body"] = len(blanked)
                counts["raw.webhook_events.payload"] = _scrub_webhook_events(conn, ts_to_ms(cutoff))
                counts["raw.meetings.meeting_notes_hash"] = wr.blank_meeting_notes_before(conn, cutoff)
                refreshed = refresh_transcripts(conn, sorted(set(blanked)))
                counts["raw.transcripts"] = refreshed.rendered
                erasure_id = audit.record_erasure(conn, kind=audit.RETENTION, trigger=trigger,
                                                  started_at=started, counts=counts,
                                                  retention_days=days, cutoff_at=cutoff)
            counts["files.transcript_exports"] = rewrite_exported_lines(settings, conn, set(refreshed.changed_keys))
    counts.update(scrub_webhook_files(settings, cutoff))
    copy = publish_transcripts_copy(settings) if settings.warehouse_path.exists() else {"published": False}
    if erasure_id is not None:
        compacted = wr.compact(settings.warehouse_path)
        with open_warehouse(settings) as conn:
            audit.finish_erasure(conn, erasure_id, utcnow(), {
                k: v for k, v in counts.items() if k.startswith("files.")})
        counts["warehouse_bytes_freed"] = compacted
    log.info("retention pass (%d days, cutoff %s): %s", days, cutoff.isoformat(), counts)
    return {"erasure_id": erasure_id, "cutoff_at": cutoff.isoformat(), "counts": counts,
            "transcripts_copy": copy}
