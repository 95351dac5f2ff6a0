"""Operations: what the CLI (and the demo) run, composed from the layers below.

Each one changes raw data (re-fetch conversations, re-apply a file, erase a contact), then calls
the `refresh` it is given for the marts and the serving copy: the CLI gives
`runner.refresh_marts`, a Dagster run of the dbt and serving assets, so the UI shows every
refresh (this layer sits below Dagster and does not import it).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Callable, Optional

from drift_pipeline.drift.orgs import OrgClients, missing_tokens_reason
from drift_pipeline.erasure import erase_files, erase_in_warehouse, previously_erased_conversations
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.serving import publish_transcripts_copy
from drift_pipeline.settings import Settings, UsageError
from drift_pipeline.timeutil import utcnow
from drift_pipeline.transcripts.export import rewrite_exported_lines
from drift_pipeline.warehouse import audit
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.raw import warehouse_org_ids
from drift_pipeline.warehouse.retention import compact
from drift_pipeline.webhooks.apply import apply_files, apply_inbox
from drift_pipeline.webhooks.events import InvalidEvent
from drift_pipeline.webhooks.inbox_files import InvalidInboxFile


# Refreshes the marts and republishes after raw changes (`runner.refresh_marts`).
Refresh = Optional[Callable[[Settings], object]]


def _erase_in_files(settings: Settings, erased: list[dict], keys: set[tuple[int, int]],
                    contact_id: int | None, email: str | None, org_id: int | None) -> int:
    """Webhook file lines about the erased contacts, each org's ids matched in that org only."""
    by_org: dict[int | None, tuple[set, set]] = {}
    for org, conversation in keys:
        by_org.setdefault(org, (set(), set()))[1].add(conversation)
    for entry in erased:
        by_org.setdefault(entry["org_id"], (set(), set()))[0].add(entry["contact_id"])
    if contact_id is not None:  # also a contact the warehouse never stored
        by_org.setdefault(org_id, (set(), set()))[0].add(int(contact_id))
    lines = sum(erase_files(settings, contacts, conversations, email, org_id=org)
                for org, (contacts, conversations) in by_org.items())
    if email and (org_id is None or not by_org):  # the address in any line of the org(s)
        lines += erase_files(settings, set(), set(), email, org_id=org_id)
    return lines


def replay_conversations(settings: Settings, conversation_ids: list[int], *, refresh: Refresh = None,
                         org_id: int | None = None) -> dict:
    """Re-fetch and upsert conversations by id (idempotent), then `refresh` the marts. With
    several orgs in the token store the ids need their org (`org_id`)."""
    async def go():
        async with OrgClients(settings) as clients:
            org = _one_org(clients, org_id, "conversation ids")
            settings.ensure_dirs()
            with open_warehouse(settings) as conn:
                sync = ConversationSync(clients.for_org(org), conn, salt=settings.secret("pii_salt"),
                                        org_id=org, overlap=timedelta(0))
                return await sync.refetch(conversation_ids)

    stats = asyncio.run(go())
    if refresh:
        refresh(settings)
    return {"conversations_refetched": stats.conversations_fetched, "rows": dict(stats.rows)}


def _one_org(clients: OrgClients, org_id: int | None, what: str) -> int | None:
    """The org a command about per-workspace ids means: the one named, else the only one."""
    if org_id is not None:
        if not clients.has_tokens(org_id):
            raise UsageError(missing_tokens_reason(org_id))
        return org_id
    if len(clients.org_ids) > 1:
        raise UsageError(f"{what} are per Drift org and the token store holds "
                         f"{', '.join(map(str, sorted(clients.org_ids)))}: name one with --org")
    return next(iter(clients.org_ids), None)


def replay_event_file(settings: Settings, path: Path, *, refresh: Refresh = None) -> dict:
    """Re-apply one stored webhook file (from processed/ or anywhere); it is not moved.
    Events already applied are recognized by their id and not applied twice."""
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    try:
        result = asyncio.run(apply_files(settings, [path], moving=False))
    except (InvalidInboxFile, InvalidEvent) as exc:
        raise UsageError(str(exc)) from None
    if refresh and result.marts_affected:
        refresh(settings)
    return result.as_dict()


def erase(settings: Settings, *, contact_id: int | None = None, email: str | None = None,
          org_id: int | None = None, refresh: Refresh = None) -> dict:
    """`drift-pipeline erase`: warehouse, files, then `refresh` the marts and republish (before
    the warehouse is compacted, so no freed page keeps an erased mart row). With
    `org_id`, only in that Drift org; a contact id needs it once the warehouse holds several
    orgs (ids are per workspace), an email without it is erased in every org."""
    erased: list[dict] = []
    erasure_id = uuid.uuid4().hex
    exported_lines = 0
    keys: set[tuple[int, int]] = set()
    has_warehouse = settings.warehouse_path.exists()
    if has_warehouse:
        with open_warehouse(settings) as conn:
            orgs = warehouse_org_ids(conn)
            if contact_id is not None and org_id is None and len(orgs) > 1:
                raise UsageError("contact ids are per Drift org and this warehouse holds "
                                 f"{', '.join(map(str, orgs))}: name one with --org")
            earlier = previously_erased_conversations(conn, settings, contact_id, org_id) \
                if contact_id is not None else set()
            erased = erase_in_warehouse(conn, settings, org_id=org_id, contact_id=contact_id, email=email,
                                        trigger="cli", erasure_id=erasure_id)
            keys = earlier | {(e["org_id"], c) for e in erased for c in e["conversation_ids"]}
            exported_lines = rewrite_exported_lines(settings, conn, keys)
    lines = _erase_in_files(settings, erased, keys, contact_id, email, org_id)
    published = False
    if erased and refresh and (settings.serving_dir / "analytics.duckdb").exists():
        refresh(settings)  # publish() republishes the transcripts copy too
        published = True
    elif erased:
        publish_transcripts_copy(settings)
    if has_warehouse:
        compact(settings.warehouse_path)
        with open_warehouse(settings) as conn:
            audit.finish_erasure(conn, erasure_id, utcnow(), {
                "files.webhook_lines": lines, "files.transcript_exports": exported_lines})
    return {"contacts_erased": len(erased), "file_lines_removed": lines,
            "transcript_export_lines_rewritten": exported_lines, "serving_copy_republished": published,
            "erasure_id": erasure_id if has_warehouse else None}
