"""Applying dropped webhook files to the warehouse: the code the sensor, `apply-inbox` and
`replay` share.

For each inbox file (oldest first): every event is validated and checked against
`raw.webhook_events` (so a redelivered or replayed event is applied once); conversations touched
by message, conversation and participant events are re-fetched through the client and upserted
(order of delivery does not matter: the fetch returns the current state); status events land in
`raw.status_events` with their exact `changedAt`, or the time received when Drift sent none
(source `webhook`), which is how reopens are seen; contact events re-fetch the contact (named
by id, or looked up by email); `gdpr_delete_requested` erases the contact from the warehouse and
the files (the caller republishes the serving copy); `app_disconnected` marks the org's tokens
unusable until `auth exchange`; unknown types are stored and skipped; widget events
(webhooks/widget.py) land in `raw.widget_events`, once per id. The file then moves to
`processed/`. A file that cannot be read moves to `quarantine/` with a `.reason` file, and the
rest keep flowing; so does an event of an org with no tokens here (webhooks/orgs.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path


from drift_pipeline.drift.orgs import OrgClients
from drift_pipeline.drift.errors import DriftDisconnected
from drift_pipeline.erasure import erase_files, erase_in_warehouse
from drift_pipeline.ingest import transform as tf
from drift_pipeline.ingest.sync import ConversationSync
from drift_pipeline.transcripts.export import rewrite_exported_lines
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse import schema
from drift_pipeline.warehouse.connection import connect
from drift_pipeline.warehouse.load import transaction, upsert
from drift_pipeline.webhooks.events import InvalidEvent, WebhookEvent, validate_event
from drift_pipeline.webhooks.orgs import require_org_tokens
from drift_pipeline.webhooks.inbox import (
    InvalidInboxFile,
    iter_inbox_files,
    quarantine_record,
    read_inbox_file,
)
from drift_pipeline.webhooks.widget import InvalidWidgetEvent, filter_event, is_widget_payload

log = logging.getLogger(__name__)

REFETCH_TYPES = frozenset({
    "new_conversation", "new_message", "conversation_inactive", "conversation_status_updated",
    "conversation_participant_added", "conversation_participant_removed",
})


CONTACT_TYPES = frozenset({"contact_identified", "contact_updated"})


@dataclass
class ApplyResult:
    files_applied: int = 0
    files_quarantined: int = 0
    files_waiting: list[str] = field(default_factory=list)  # left in the inbox: app disconnected
    events_applied: int = 0
    events_duplicate: int = 0
    events_skipped: int = 0
    events_invalid: int = 0
    conversations_refetched: int = 0
    contacts_refetched: int = 0
    status_events: int = 0
    contacts_erased: int = 0
    file_lines_erased: int = 0
    orgs_disconnected: list[int] = field(default_factory=list)
    widget_events_applied: int = 0  # also counted in events_applied (they refresh the marts)
    widget_fields_dropped: int = 0
    quarantined: list[str] = field(default_factory=list)
    touched_days: set = field(default_factory=set)

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["touched_days"] = sorted(str(d) for d in self.touched_days)
        return out


def quarantine(settings: Settings, path: Path, reason: str) -> Path:
    """Move a bad file aside with a `.reason` file beside it; never raises for a vanished file."""
    settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = settings.quarantine_dir / path.name
    (settings.quarantine_dir / f"{path.name}.reason").write_text(reason.strip() + "\n")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        pass
    log.warning("quarantined %s: %s", path.name, reason)
    return target


def event_time_ms(event: WebhookEvent, record: dict) -> int | None:
    """When the event happened: its own time, else when it was received (drift-api.md: a
    status or participant event without `changedAt` counts from the time received)."""
    if event.occurred_at_ms is not None:
        return event.occurred_at_ms
    received = record.get("received_at")
    return received if isinstance(received, int) and not isinstance(received, bool) else None


@dataclass(frozen=True)
class _Erasure:
    """What a gdpr_delete_requested erased in the warehouse; the files follow once the
    applied inbox files have moved (see `InboxApplier.erase_in_files`)."""

    org_id: int
    contact_ids: frozenset[int]
    conversation_ids: frozenset[int]
    email: str | None = field(default=None, repr=False)


def _seen(conn, org_event_ids: list[tuple[int, str]]) -> set[str]:
    if not org_event_ids:
        return set()
    rows = conn.execute(
        "SELECT event_id FROM raw.webhook_events WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [[e for _, e in org_event_ids]],
    ).fetchall()
    return {r[0] for r in rows}


class InboxApplier:
    """Applies events with each org's own client (`OrgClients`) and one warehouse connection."""

    def __init__(self, settings: Settings, clients: OrgClients, conn):
        self.settings = settings
        self.clients = clients  # one client per org: its tokens, its rate-limit budget
        self.conn = conn
        self.salt = settings.secret("pii_salt")
        self._erasures: list[_Erasure] = []

    async def apply_records(self, records: list[dict], source_file: str, result: ApplyResult,
                            *, force: bool = False) -> None:
        """Apply one file's records; `force` (replay) re-applies events already applied, and
        an event that is still invalid raises `InvalidEvent` (the operator asked for it)
        instead of being quarantined again."""
        widget_records = [(number, record) for number, record in enumerate(records, start=1)
                          if is_widget_payload(record["payload"])]
        if widget_records:
            self._apply_widget_events(widget_records, source_file, result, force=force)
        events = []
        for number, record in enumerate(records, start=1):
            if is_widget_payload(record["payload"]):
                continue  # applied above
            try:
                events.append((record, require_org_tokens(self.clients, validate_event(record["payload"]))))
            except InvalidEvent as exc:
                if force:
                    raise InvalidEvent(f"{source_file} line {number}: {exc.reason}") from None
                result.events_invalid += 1
                self._quarantine_record(source_file, number, record, exc.reason)
        fresh, pending_ids = [], set()
        seen = set() if force else _seen(self.conn, [(e.org_id, e.event_id) for _, e in events])
        for record, event in events:
            if event.event_id in seen or event.event_id in pending_ids:
                result.events_duplicate += 1
                continue
            pending_ids.add(event.event_id)
            fresh.append((record, event))
        if not fresh:
            return
        # Erasure first: it needs no API call, so a GDPR request is honoured even when the
        # refetch below cannot run (app disconnected); whatever is refetched afterwards comes
        # back without the erased contact (the sync suppresses it).
        erased = await self._erase(fresh, result)
        await self._refetch(fresh, result)
        now = tf.utcnow()
        status_rows, event_rows = [], []
        for record, event in fresh:
            outcome = "applied"
            if not event.known:
                outcome = "skipped_unknown_type"
                result.events_skipped += 1
            elif event.type == "conversation_status_updated":
                changed_at = tf.ms_to_ts(event_time_ms(event, record))
                status_rows.append(tf.status_event_row(event.org_id, event.conversation_id,
                                                       event.status, changed_at, "webhook", now))
                result.touched_days.add(changed_at.date())
            elif event.type == "app_disconnected":
                await self._disconnect(event, record, result)
            if event.known:
                result.events_applied += 1
            event_rows.append({
                "org_id": event.org_id, "event_id": event.event_id, "event_type": event.type,
                "conversation_id": event.conversation_id,
                "occurred_at": tf.ms_to_ts(event_time_ms(event, record)),
                "received_at": tf.ms_to_ts(record.get("received_at")), "applied_at": now,
                "outcome": outcome, "source_file": source_file,
                # Erased contacts' events keep their id (dedupe) but not their content.
                "payload": None if event.event_id in erased else event.canonical,
            })
        with transaction(self.conn):
            result.status_events += upsert(self.conn, schema.STATUS_EVENTS, status_rows)
            upsert(self.conn, schema.WEBHOOK_EVENTS, event_rows)

    def _apply_widget_events(self, records: list[tuple[int, dict]], source_file: str,
                             result: ApplyResult, *, force: bool = False) -> None:
        """Upsert widget events into `raw.widget_events`, each id once.

        A browser does not know its Drift org: an event takes the org of its conversation, or
        the warehouse's only org. An event neither tells (a multi-workspace warehouse that has
        not synced the conversation yet) is quarantined, to be replayed after the next sync.
        Under `force` (replay) an event that still cannot be applied raises `InvalidEvent`,
        like a webhook's.
        """
        def reject(number: int, record: dict, reason: str) -> None:
            if force:
                raise InvalidEvent(f"{source_file} line {number}: {reason}")
            result.events_invalid += 1
            self._quarantine_record(source_file, number, record, reason)

        events = []
        for number, record in records:  # numbered by their line in the file
            try:
                events.append((number, record, filter_event(record["payload"])))
            except InvalidWidgetEvent as exc:
                reject(number, record, exc.reason)
        if not events:
            return
        # Conversation ids are per workspace: an id two workspaces share names neither.
        orgs_of = dict(self.conn.execute(
            "SELECT conversation_id, min(org_id) FROM raw.conversations "
            "WHERE conversation_id IN (SELECT unnest(?::BIGINT[])) GROUP BY conversation_id "
            "HAVING count(DISTINCT org_id) = 1",
            [sorted({e.conversation_id for _, _, e in events})]).fetchall())
        known_orgs = [r[0] for r in self.conn.execute(
            "SELECT org_id FROM raw.conversations UNION SELECT org_id FROM raw.users").fetchall()]
        only_org = known_orgs[0] if len(known_orgs) == 1 else None
        seen = set() if force else {r[0] for r in self.conn.execute(
            "SELECT event_id FROM raw.widget_events WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
            [[e.event_id for _, _, e in events]]).fetchall()}
        now = tf.utcnow()
        rows = []
        for number, record, event in events:
            if event.event_id in seen:
                result.events_duplicate += 1
                continue
            org_id = orgs_of.get(event.conversation_id, only_org)
            if org_id is None:
                reject(
                    number, record,
                    f"widget event for conversation {event.conversation_id}: its Drift org is "
                    "unknown (not synced yet, or the id exists in several workspaces); replay "
                    "this file after a sync")
                continue
            seen.add(event.event_id)
            rows.append({
                "org_id": org_id, "event_id": event.event_id, "event_type": event.type,
                "conversation_id": event.conversation_id,
                "occurred_at": tf.ms_to_ts(event.occurred_at_ms),
                **{f"utm_{name}": value for name, value in event.utm.items()},
                "page_path": event.page_path, "dropped_fields": event.dropped_fields,
                "received_at": tf.ms_to_ts(record.get("received_at")),
                "source_file": source_file, "synced_at": now,
            })
            result.widget_fields_dropped += event.dropped_fields
            result.touched_days.add(tf.ms_to_ts(event.occurred_at_ms).date())
        with transaction(self.conn):
            applied = upsert(self.conn, schema.WIDGET_EVENTS, rows)
        result.widget_events_applied += applied
        result.events_applied += applied

    async def _refetch(self, fresh, result: ApplyResult) -> None:

        by_org: dict[int, set[int]] = {}
        for _, event in fresh:
            if event.type in REFETCH_TYPES and event.conversation_id is not None:
                by_org.setdefault(event.org_id, set()).add(event.conversation_id)
        for org_id, ids in by_org.items():
            sync = ConversationSync(self.clients.for_org(org_id), self.conn, salt=self.salt, org_id=org_id)
            stats = await sync.refetch(sorted(ids))
            result.conversations_refetched += stats.conversations_fetched
        contacts_by_org: dict[int, set[int]] = {}
        for _, event in fresh:
            if event.type not in CONTACT_TYPES:
                continue
            ids = contacts_by_org.setdefault(event.org_id, set())
            if event.contact_id is not None:
                ids.add(event.contact_id)
            elif event.contact_email is not None:
                ids.update(await self._contact_ids_by_email(event.org_id, event.contact_email))
        for org_id, ids in contacts_by_org.items():
            if not ids:
                continue
            sync = ConversationSync(self.clients.for_org(org_id), self.conn, salt=self.salt, org_id=org_id)
            result.contacts_refetched += await sync.refetch_contacts(sorted(ids))
        for record, event in fresh:
            at = event_time_ms(event, record)
            if at:
                result.touched_days.add(tf.ms_to_ts(at).date())

    async def _contact_ids_by_email(self, org_id: int, email: str) -> set[int]:
        # A contact event naming only an email: Drift's lookup gives the id to re-fetch.
        found = set()
        for contact in await self.clients.for_org(org_id).find_contacts_by_email(email):
            contact_id = contact.get("id") if isinstance(contact, dict) else None
            try:
                found.add(int(contact_id))
            except (TypeError, ValueError):
                log.warning("GET /contacts?email= answered a contact without an integer id")
        if not found:
            log.info("a contact event named an email Drift does not know: nothing to re-fetch")
        return found

    async def _erase(self, fresh, result: ApplyResult) -> set[str]:
        erased = set()
        for _, event in fresh:
            if event.type != "gdpr_delete_requested":
                continue
            done = erase_in_warehouse(self.conn, self.settings, org_id=event.org_id,
                                      contact_id=event.contact_id, email=event.contact_email,
                                      trigger="webhook")
            result.contacts_erased += len(done)
            self._erasures.append(_Erasure(
                org_id=event.org_id,
                contact_ids=frozenset({e["contact_id"] for e in done}
                                      | ({event.contact_id} if event.contact_id is not None else set())),
                conversation_ids=frozenset(c for e in done for c in e["conversation_ids"]),
                email=event.contact_email))
            erased.add(event.event_id)
        # Events of this batch about an erased contact keep their id (dedupe), not their content:
        # their payloads are stored after the erasure ran.
        contacts = {(e.org_id, c) for e in self._erasures for c in e.contact_ids}
        conversations = {(e.org_id, c) for e in self._erasures for c in e.conversation_ids}
        erased.update(event.event_id for _, event in fresh
                      if (event.org_id, event.conversation_id) in conversations
                      or (event.org_id, event.contact_id) in contacts)
        return erased

    def erase_in_files(self, result: ApplyResult) -> None:
        """Drop the lines about erased contacts from inbox, processed and quarantine files, and
        re-render their conversations' lines in transcript exports under the home.

        Run after the applied files have moved to `processed/`, so the file being applied is
        never rewritten under the apply step (and the gdpr request's own line, which names the
        contact, goes too). Compacting the warehouse file is left to `drift-pipeline erase`:
        too slow for the sensor's path."""
        while self._erasures:
            erasure = self._erasures.pop(0)
            result.file_lines_erased += erase_files(self.settings, set(erasure.contact_ids),
                                                    set(erasure.conversation_ids), erasure.email,
                                                    org_id=erasure.org_id)
            result.file_lines_erased += rewrite_exported_lines(
                self.settings, self.conn, {(erasure.org_id, c) for c in erasure.conversation_ids})

    async def _disconnect(self, event: WebhookEvent, record: dict, result: ApplyResult) -> None:
        """Stop using the org's tokens: Drift revoked them when the app was disconnected."""
        at_ms = event_time_ms(event, record) or tf.ts_to_ms(tf.utcnow())
        marked = await self.clients.mark_disconnected(event.org_id, at_ms / 1000.0)
        if marked:
            result.orgs_disconnected.append(event.org_id)
            log.warning("Drift disconnected the app from org %s: its syncs stop until "
                        "`drift-pipeline auth exchange --code CODE` re-authorizes it", event.org_id)
        else:
            log.warning("Drift disconnected the app from org %s, whose tokens are not in use "
                        "here (or were re-authorized since): nothing to stop", event.org_id)

    def _quarantine_record(self, source_file: str, number: int, record: dict, reason: str) -> None:
        name = f"{Path(source_file).stem}.line-{number}.json"
        quarantine_record(self.settings.quarantine_dir, name, record, f"line {number}: {reason}")
        log.warning("quarantined %s line %s: %s", source_file, number, reason)

    async def apply_file(self, path: Path, result: ApplyResult) -> None:
        try:
            records = read_inbox_file(path)
        except InvalidInboxFile as exc:
            quarantine(self.settings, path, str(exc))
            result.files_quarantined += 1
            result.quarantined.append(path.name)
            return
        await self.apply_records(records, path.name, result)
        self.settings.processed_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.settings.processed_dir / path.name)
        result.files_applied += 1


async def apply_files(settings: Settings, paths: list[Path], *, moving: bool = True) -> ApplyResult:
    """Apply these webhook files: inbox files are moved to processed/ (or quarantine/) as they
    are applied; with `moving=False` (replay) a file is re-applied where it lies."""
    result = ApplyResult()
    settings.ensure_dirs()
    async with OrgClients(settings) as clients:
        conn = connect(settings)
        try:
            schema.create_raw_schema(conn)
            applier = InboxApplier(settings, clients, conn)
            try:
                for path in paths:
                    if moving:
                        if path.exists():
                            await _apply_or_wait(applier, path, result)
                    else:
                        await applier.apply_records(_read_any(path), path.name, result, force=True)
            finally:
                applier.erase_in_files(result)  # what the warehouse erased leaves the files too
        finally:
            conn.close()
    return result


async def _apply_or_wait(applier: InboxApplier, path: Path, result: ApplyResult) -> None:
    """Apply one inbox file; while its org is disconnected it stays in the inbox (applied
    after `auth exchange`) and the files after it still get their chance (e.g. a GDPR request
    needs no API call)."""
    try:
        await applier.apply_file(path, result)
    except DriftDisconnected as exc:
        result.files_waiting.append(path.name)
        log.warning("%s waits in the inbox: %s", path.name, exc.message)


def _read_any(path: Path) -> list[dict]:
    """An inbox file, or a single webhook payload as Drift sent it (for `replay event`)."""
    try:
        return read_inbox_file(path)
    except InvalidInboxFile as inbox_error:
        try:
            payload = json.loads(path.read_text())
        except ValueError:
            raise inbox_error from None
        if not isinstance(payload, dict) or "type" not in payload:
            raise inbox_error
        payload = {k: v for k, v in payload.items() if k != "token"}
        # When the file was stored stands in for when Drift sent it (an event without changedAt
        # counts from it), and stays the same however often the file is replayed.
        received_at = int(path.stat().st_mtime * 1000)
        return [{"event_id": "", "received_at": received_at, "payload": payload}]


def apply_inbox(settings: Settings, files: list[str] | None = None) -> ApplyResult:
    """Apply the inbox files (all waiting ones, or just these names), oldest first."""
    waiting = iter_inbox_files(settings.inbox_dir)
    if files is not None:
        wanted = set(files)
        waiting = [p for p in waiting if p.name in wanted]
    return asyncio.run(apply_files(settings, waiting))
