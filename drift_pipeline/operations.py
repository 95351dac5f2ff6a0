"""Operations: what the CLI (and the demo) run, composed from the layers below.

Each one changes raw data (apply webhook files, re-fetch conversations, erase a contact) and
then refreshes the marts and the serving copy through `marts.refresh_marts`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from drift_pipeline.drift.client import DriftClient
from drift_pipeline.erasure import (
    erase_files,
    erase_in_warehouse,
    previously_erased_conversations,
)
from drift_pipeline.ingest import transform as tf
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.marts import refresh_marts
from drift_pipeline.serving import publish_transcripts_copy
from drift_pipeline.settings import Settings, UsageError
from drift_pipeline.transcripts.export import rewrite_exported_lines
from drift_pipeline.warehouse import audit
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.retention import compact
from drift_pipeline.webhooks.apply import apply_files, apply_inbox
from drift_pipeline.webhooks.events import InvalidEvent
from drift_pipeline.webhooks.inbox import InvalidInboxFile


def apply_inbox_and_refresh(settings: Settings, files: list[str] | None = None) -> dict:
    """`drift-pipeline apply-inbox`: apply, then refresh the marts and the serving copy."""
    result = apply_inbox(settings, files)
    if result.events_applied or result.contacts_erased:
        refresh_marts(settings)
    return result.as_dict()


def replay_conversations(settings: Settings, conversation_ids: list[int], *, refresh: bool = True) -> dict:
    """Re-fetch and upsert conversations by id (idempotent), then refresh the marts."""
    async def go():
        async with DriftClient.from_settings(settings) as client:
            settings.ensure_dirs()
            with open_warehouse(settings) as conn:
                sync = ConversationSync(client, conn, salt=settings.secret("pii_salt"),
                                        overlap=timedelta(0))
                return await sync.refetch(conversation_ids)

    stats = asyncio.run(go())
    if refresh:
        refresh_marts(settings)
    return {"conversations_refetched": stats.conversations_fetched, "rows": dict(stats.rows)}


def replay_event_file(settings: Settings, path: Path, *, refresh: bool = True) -> dict:
    """Re-apply one stored webhook file (from processed/ or anywhere); it is not moved.
    Events already applied are recognized by their id and not applied twice."""
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    try:
        result = asyncio.run(apply_files(settings, [path], moving=False))
    except (InvalidInboxFile, InvalidEvent) as exc:
        raise UsageError(str(exc)) from None
    if refresh and (result.events_applied or result.contacts_erased):
        refresh_marts(settings)
    return result.as_dict()


def erase(settings: Settings, *, contact_id: int | None = None, email: str | None = None) -> dict:
    """`drift-pipeline erase`: warehouse, files, then rebuild the marts and republish."""
    erased: list[dict] = []
    erasure_id = uuid.uuid4().hex
    exported_lines = 0
    has_warehouse = settings.warehouse_path.exists()
    if has_warehouse:
        with open_warehouse(settings) as conn:
            earlier = previously_erased_conversations(conn, settings, contact_id) if contact_id is not None else set()
            erased = erase_in_warehouse(conn, settings, org_id=None, contact_id=contact_id, email=email,
                                        trigger="cli", erasure_id=erasure_id)
            keys = earlier | {(e["org_id"], c) for e in erased for c in e["conversation_ids"]}
            exported_lines = rewrite_exported_lines(settings, conn, keys)
    contact_ids = {e["contact_id"] for e in erased} | ({int(contact_id)} if contact_id is not None else set())
    conversation_ids = {c for _, c in keys} if has_warehouse else set()
    lines = erase_files(settings, contact_ids, conversation_ids, email)
    published = False
    if erased and (settings.serving_dir / "analytics.duckdb").exists():
        refresh_marts(settings)  # publish() republishes the transcripts copy too
        published = True
    elif erased:
        publish_transcripts_copy(settings)
    if has_warehouse:
        compact(settings.warehouse_path)
        with open_warehouse(settings) as conn:
            audit.finish_erasure(conn, erasure_id, tf.utcnow(), {
                "files.webhook_lines": lines, "files.transcript_exports": exported_lines})
    return {"contacts_erased": len(erased), "file_lines_removed": lines,
            "transcript_export_lines_rewritten": exported_lines, "serving_copy_republished": published,
            "erasure_id": erasure_id if has_warehouse else None}
