"""Applying dropped webhook files to the warehouse: the code the sensor, `apply-inbox` and
`replay` share.

One pass over the whole backlog, so a busy conversation costs one re-fetch however many events
and files name it:

1. read every waiting file (oldest first); a file that cannot be read moves to `quarantine/`
   with a `.reason` file, and the rest keep flowing;
2. validate each event (one that cannot be used is quarantined on its own) and drop those
   already applied (`raw.webhook_events`) or seen earlier in the pass, except that such a
   repeat of a status or participant event without `changedAt` (`WebhookEvent.repeatable`: it
   may be the same change made again, e.g. closed after a reopen) still touches its
   conversation: it is re-fetched below like any other, and the repeat adds no row;
3. what needs no API call: `gdpr_delete_requested` erases the contact from the warehouse (the
   files follow once the applied files have moved), `app_disconnected` marks the org's tokens
   unusable until `auth exchange`;
4. collect the conversations (message, conversation and participant events) and contacts
   (named by id, or looked up by email) touched across all files, and fetch each once per org
   (`ConversationSync.fetch_touched`): the detail always, the message pages only where the
   webhooks cannot stand in for them (DECISIONLOG: what is trusted from webhook payloads);
5. write in one transaction: the fetched rows, status events with their exact `changedAt` (or
   the time received when Drift sent none: source `webhook`, which is how reopens are seen),
   widget events (webhooks/widget.py) into `raw.widget_events` once per id, and every event
   into `raw.webhook_events` (unknown types are stored and skipped);
6. move the files to `processed/`. A file naming a conversation or contact of an org Drift has
   disconnected stays in the inbox, unapplied, until `auth exchange`; the others go on. An
   event of an org with no tokens here is quarantined with that reason (webhooks/orgs.py).

Order of delivery does not matter: the fetch returns the current state, and payloads only add
messages by id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from drift_pipeline.drift.errors import DriftDisconnected, DriftMissingScope
from drift_pipeline.drift.orgs import OrgClients
from drift_pipeline.erasure import erase_files, erase_in_warehouse
from drift_pipeline.fsutil import append_json_line
from drift_pipeline.ingest import transform
from drift_pipeline.pii import hash_pii
from drift_pipeline.ingest.streams import fetch_served_meetings, store_meetings
from drift_pipeline.ingest.sync import ConversationSync, TouchedConversation, complete_message
from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ms_to_ts, ts_to_ms, utcnow
from drift_pipeline.transcripts.export import rewrite_exported_lines
from drift_pipeline.warehouse import raw, schema
from drift_pipeline.warehouse.connection import open_warehouse
from drift_pipeline.warehouse.load import transaction, upsert
from drift_pipeline.webhooks.events import (
    InvalidEvent,
    WebhookEvent,
    complete_meeting,
    goal_met_ids,
    hash_meeting_notes,
    validate_event,
)
from drift_pipeline.webhooks.orgs import require_org_tokens
from drift_pipeline.webhooks.inbox_files import (
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

DAY_MS = 86_400_000

# Stages of one apply pass, in order, as timed in `ApplyResult.stage_seconds`.
STAGES = ("read", "erase", "fetch", "write", "move")
# Each pass that applied something appends its timings here (under the home; bench/freshness.py
# reads it to split the time from POST to the serving copy into stages).
TIMINGS_LOG = Path("logs") / "timings.jsonl"


@dataclass
class ApplyResult:
    files_applied: int = 0
    files_quarantined: int = 0
    files_waiting: list[str] = field(default_factory=list)  # left in the inbox: app disconnected
    events_applied: int = 0
    events_duplicate: int = 0
    events_repeated: int = 0  # ... of which repeatable: their conversation was re-fetched
    events_skipped: int = 0
    events_invalid: int = 0
    conversations_refetched: int = 0  # conversations whose detail was fetched and stored
    conversations_from_payloads: int = 0  # ... of which the messages came from webhooks alone
    contacts_refetched: int = 0
    status_events: int = 0
    contacts_erased: int = 0
    file_lines_erased: int = 0
    orgs_disconnected: list[int] = field(default_factory=list)
    widget_events_applied: int = 0  # also counted in events_applied (they refresh the marts)
    meetings_stored: int = 0  # meeting rows written (from payloads, or fetched for a subset)
    playbook_goals_met: int = 0
    widget_fields_dropped: int = 0
    quarantined: list[str] = field(default_factory=list)
    touched_days: set = field(default_factory=set)
    # Drift API calls of the pass by endpoint (detail, messages = pages, contact, reports, ...).
    api_calls: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)  # see STAGES

    @property
    def marts_affected(self) -> bool:
        """True when the pass wrote something the marts read: an applied event, an erasure, or
        the re-fetch of a repeat (which may have found the conversation changed)."""
        return bool(self.events_applied or self.contacts_erased or self.events_repeated)

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


@dataclass
class _File:
    """One file of the pass: its fresh events and widget records, and whether it must wait."""

    path: Path
    events: list[tuple[dict, WebhookEvent]] = field(default_factory=list)
    # Repeatable events whose id was applied already: they touch their conversation only.
    repeats: list[tuple[dict, WebhookEvent]] = field(default_factory=list)
    widget_records: list[tuple[int, dict]] = field(default_factory=list)  # (line, record)
    waiting: bool = False

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class _OrgWork:
    """What the pass must fetch for one org."""

    conversations: dict[int, TouchedConversation] = field(default_factory=dict)
    contact_ids: set[int] = field(default_factory=set)
    contact_emails: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)  # files with an event that needs the API
    meetings: list[dict] = field(default_factory=list)  # whole meetings from new_meeting payloads
    # Slot days (epoch ms of 00:00 UTC) whose meetings a subset payload asks to fetch; None:
    # the payload gave no slot, so the whole window Drift serves.
    meeting_days: set[int | None] = field(default_factory=set)
    fetched_meetings: list[dict] = field(default_factory=list)
    meetings_refused: str | None = None  # the scope Drift refused the meetings fetch for


class InboxApplier:
    """Applies events with one client and one warehouse connection."""

    def __init__(self, settings: Settings, clients: OrgClients, conn):
        self.settings = settings
        self.clients = clients  # one client per org: its tokens, its rate-limit budget
        self.conn = conn
        self.salt = settings.secret("pii_salt")
        self._erasures: list[_Erasure] = []
        self._syncs: dict[int, ConversationSync] = {}

    def _sync(self, org_id: int) -> ConversationSync:
        # One per org for the applier's life: contacts and users fetched once.
        if org_id not in self._syncs:
            self._syncs[org_id] = ConversationSync(self.clients.for_org(org_id), self.conn, salt=self.salt, org_id=org_id)
        return self._syncs[org_id]

    async def apply_pass(self, paths: list[Path], result: ApplyResult, *, moving: bool = True) -> None:
        """Apply these files as one pass. `moving=False` is replay: files are re-applied where
        they lie, events already applied are applied again, and an event (or file) that is
        still unusable raises `InvalidEvent` / `InvalidInboxFile` (the operator asked for it)
        instead of being quarantined again."""
        force = not moving
        clock = _StageClock(result)
        files = self._validate_and_dedupe(self._read(paths, result, force=force), result, force=force)
        fresh = [(f, record, event) for f in files for record, event in f.events]
        repeats = [(f, record, event) for f in files for record, event in f.repeats]
        clock.lap("read")
        if not fresh and not repeats and not any(f.widget_records for f in files):
            self._finish_files(files, result, moving=moving)
            clock.lap("move")
            return
        # Erasure first: it needs no API call, so a GDPR request is honoured even when the
        # fetch below cannot run (app disconnected); whatever is fetched afterwards comes back
        # without the erased contact (the sync suppresses it).
        erased = self._erase([(record, event) for _, record, event in fresh], result)
        # Drift revoked the tokens when it sent app_disconnected: no fetch of the org after it.
        for _, record, event in fresh:
            if event.type == "app_disconnected":
                await self._disconnect(event, record, result)
        clock.lap("erase")
        work = self._plan(fresh + repeats)
        fetches = {}
        for org_id, org_work in work.items():
            try:
                fetches[org_id] = await self._fetch(org_id, org_work, result)
            except DriftDisconnected as exc:
                if force:
                    raise
                for f in files:
                    if f.name in org_work.files:
                        f.waiting = True
                        result.files_waiting.append(f.name)
                        log.warning("%s waits in the inbox: %s", f.name, exc.message)
        clock.lap("fetch")
        with transaction(self.conn):
            for org_id, fetch in fetches.items():
                stats = self._sync(org_id).write_touched(fetch)
                result.conversations_refetched += stats.conversations_fetched
                self._write_meetings(org_id, work[org_id], result)
            self._write_events(files, result, erased)
            self._write_widget_events(files, result, force=force)
        clock.lap("write")
        self._finish_files(files, result, moving=moving)
        clock.lap("move")

    # -- 1. read ---------------------------------------------------------------------------
    def _read(self, paths: list[Path], result: ApplyResult, *, force: bool) -> list[tuple[_File, list]]:
        read = []
        for path in paths:
            if force:
                read.append((_File(path), _read_any(path)))
                continue
            if not path.exists():
                continue  # applied by someone else meanwhile
            try:
                records = read_inbox_file(path)
            except InvalidInboxFile as exc:
                quarantine(self.settings, path, str(exc))
                result.files_quarantined += 1
                result.quarantined.append(path.name)
                continue
            read.append((_File(path), records))
        return read

    # -- 2. validate and dedupe ------------------------------------------------------------
    def _validate_and_dedupe(self, read: list[tuple[_File, list]], result: ApplyResult, *,
                             force: bool) -> list[_File]:
        candidates = []
        for f, records in read:
            for number, record in enumerate(records, start=1):
                if is_widget_payload(record["payload"]):
                    f.widget_records.append((number, record))
                    continue
                try:
                    # A replayed payload as Drift sent it may carry meeting notes: hashed as the
                    # receiver does (the same event id), so raw.webhook_events never holds them.
                    payload = hash_meeting_notes(record["payload"], lambda notes: hash_pii(notes, self.salt))
                    candidates.append((f, record, require_org_tokens(self.clients, validate_event(payload))))
                except InvalidEvent as exc:
                    if force:
                        raise InvalidEvent(f"{f.name} line {number}: {exc.reason}") from None
                    result.events_invalid += 1
                    self._quarantine_record(f.name, number, record, exc.reason)
        seen = set() if force else raw.applied_event_ids(self.conn, (e.event_id for _, _, e in candidates))
        for f, record, event in candidates:
            if event.event_id in seen:
                result.events_duplicate += 1
                if event.repeatable:
                    # Maybe a redelivery, maybe the same change made again: the conversation's
                    # detail tells which (one fetch, shared with the pass), no row is added.
                    result.events_repeated += 1
                    f.repeats.append((record, event))
                continue
            seen.add(event.event_id)
            f.events.append((record, event))
        return [f for f, _ in read]

    # -- 4. plan and fetch -----------------------------------------------------------------
    @staticmethod
    def _plan(fresh: list[tuple[_File, dict, WebhookEvent]]) -> dict[int, _OrgWork]:
        work: dict[int, _OrgWork] = {}
        for f, _, event in fresh:
            if event.type in REFETCH_TYPES and event.conversation_id is not None:
                org = work.setdefault(event.org_id, _OrgWork())
                org.files.add(f.name)
                touched = org.conversations.setdefault(event.conversation_id, TouchedConversation())
                if event.type == "new_message":
                    if complete_message(event.data):
                        touched.payload_messages[int(event.data["id"])] = event.data
                    else:
                        touched.partial_payload = True
                # Only a time Drift sent explains a change; the time received does not.
                touched.saw_change(event.occurred_at_ms)
            elif event.type == "new_meeting":
                org = work.setdefault(event.org_id, _OrgWork())
                if complete_meeting(event.data):
                    org.meetings.append(event.data)
                else:
                    org.files.add(f.name)
                    slot = transform.int_or_none(event.data.get("slotStart"))
                    org.meeting_days.add(None if slot is None else slot - slot % DAY_MS)
            elif event.type in CONTACT_TYPES:
                org = work.setdefault(event.org_id, _OrgWork())
                org.files.add(f.name)
                if event.contact_id is not None:
                    org.contact_ids.add(event.contact_id)
                elif event.contact_email is not None:
                    org.contact_emails.add(event.contact_email)
        return work

    async def _fetch(self, org_id: int, work: _OrgWork, result: ApplyResult):
        contact_ids = set(work.contact_ids)
        for email in sorted(work.contact_emails):
            contact_ids |= await self._contact_ids_by_email(org_id, email)
        fetch = await self._sync(org_id).fetch_touched(work.conversations, contact_ids)
        result.conversations_from_payloads += fetch.conversations_from_payloads
        result.contacts_refetched += fetch.contacts_requested
        await self._fetch_meetings(org_id, work)
        return fetch

    async def _fetch_meetings(self, org_id: int, work: _OrgWork) -> None:
        """The meetings of each day a subset `new_meeting` names (one call a day), or every
        meeting Drift serves when one names no slot. Without `user_read` the events are
        recorded but nothing is fetched (the daily sync skips meetings too)."""
        if not work.meeting_days:
            return
        client = self.clients.for_org(org_id)
        try:
            if None in work.meeting_days:
                work.fetched_meetings = await fetch_served_meetings(client)
                return
            for day in sorted(work.meeting_days):
                work.fetched_meetings += await client.get_meetings(day, day + DAY_MS - 1)
        except DriftMissingScope as exc:
            work.meetings_refused = exc.scope
            log.warning("new_meeting events of org %s: meetings not fetched, the app lacks the %s scope",
                        org_id, exc.scope)

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

    # -- 5. write --------------------------------------------------------------------------
    def _write_events(self, files: list[_File], result: ApplyResult, erased: set[str]) -> None:
        now = utcnow()
        status_rows, event_rows, goal_rows = [], [], []
        for f in files:
            if f.waiting:
                continue
            for record, event in f.events:
                at = event_time_ms(event, record)
                if at:
                    result.touched_days.add(ms_to_ts(at).date())
                outcome = "applied"
                if not event.known:
                    outcome = "skipped_unknown_type"
                    result.events_skipped += 1
                elif event.type == "conversation_status_updated":
                    changed_at = ms_to_ts(at)
                    status_rows.append(transform.status_event_row(event.org_id, event.conversation_id,
                                                           event.status, changed_at, "webhook", now))
                elif event.type == "playbook_goal_met":
                    ids = goal_met_ids(event.data)
                    if event.event_id in erased:
                        ids["contact_id"] = None
                    goal_rows.append({"org_id": event.org_id, "event_id": event.event_id, **ids,
                                      "occurred_at": ms_to_ts(at), "synced_at": now})
                if event.known:
                    result.events_applied += 1
                event_rows.append({
                    "org_id": event.org_id, "event_id": event.event_id, "event_type": event.type,
                    "conversation_id": event.conversation_id,
                    "occurred_at": ms_to_ts(at),
                    "received_at": ms_to_ts(record.get("received_at")), "applied_at": now,
                    "outcome": outcome, "source_file": f.name,
                    # Erased contacts' events keep their id (dedupe) but not their content.
                    "payload": None if event.event_id in erased else event.canonical,
                })
        result.status_events += upsert(self.conn, schema.STATUS_EVENTS, status_rows)
        result.playbook_goals_met += upsert(self.conn, schema.PLAYBOOK_GOALS, goal_rows)
        upsert(self.conn, schema.WEBHOOK_EVENTS, event_rows)

    def _write_meetings(self, org_id: int, work: _OrgWork, result: ApplyResult) -> None:
        # Fetched first, then the payloads: a payload newer than the fetch wins, an older one
        # only adds its change (store_meetings keeps the newest state per slug).
        for meetings, source in ((work.fetched_meetings, "poll"), (work.meetings, "webhook")):
            if meetings:
                written = store_meetings(self.conn, org_id, meetings, salt=self.salt, source=source)
                result.meetings_stored += written["meetings"]

    def _write_widget_events(self, files: list[_File], result: ApplyResult, *, force: bool) -> None:
        """Upsert widget events into `raw.widget_events`, each id once; after the conversations
        of the pass are written, so an event finds the org of a conversation new in this pass.

        A browser does not know its Drift org: an event takes the org of its conversation, or
        the warehouse's only org. An event neither tells (a multi-workspace warehouse that has
        not synced the conversation yet) is quarantined, to be replayed after the next sync.
        Under `force` (replay) an event that still cannot be applied raises `InvalidEvent`,
        like a webhook's.
        """
        def reject(name: str, number: int, record: dict, reason: str) -> None:
            if force:
                raise InvalidEvent(f"{name} line {number}: {reason}")
            result.events_invalid += 1
            self._quarantine_record(name, number, record, reason)

        events = []
        for f in files:
            if f.waiting:
                continue
            for number, record in f.widget_records:  # numbered by their line in the file
                try:
                    events.append((f.name, number, record, filter_event(record["payload"])))
                except InvalidWidgetEvent as exc:
                    reject(f.name, number, record, exc.reason)
        if not events:
            return
        orgs_of = raw.single_org_conversations(self.conn, (e.conversation_id for *_, e in events))
        known = raw.known_orgs(self.conn)
        only_org = known[0] if len(known) == 1 else None
        seen = set() if force else raw.applied_widget_event_ids(self.conn, (e.event_id for *_, e in events))
        now = utcnow()
        rows = []
        for name, number, record, event in events:
            if event.event_id in seen:
                result.events_duplicate += 1
                continue
            org_id = orgs_of.get(event.conversation_id, only_org)
            if org_id is None:
                reject(
                    name, number, record,
                    f"widget event for conversation {event.conversation_id}: its Drift org is "
                    "unknown (not synced yet, or the id exists in several workspaces); replay "
                    "this file after a sync")
                continue
            seen.add(event.event_id)
            rows.append({
                "org_id": org_id, "event_id": event.event_id, "event_type": event.type,
                "conversation_id": event.conversation_id,
                "occurred_at": ms_to_ts(event.occurred_at_ms),
                **{f"utm_{key}": value for key, value in event.utm.items()},
                "page_path": event.page_path, "dropped_fields": event.dropped_fields,
                "received_at": ms_to_ts(record.get("received_at")),
                "source_file": name, "synced_at": now,
            })
            result.widget_fields_dropped += event.dropped_fields
            result.touched_days.add(ms_to_ts(event.occurred_at_ms).date())
        applied = upsert(self.conn, schema.WIDGET_EVENTS, rows)
        result.widget_events_applied += applied
        result.events_applied += applied

    # -- 6. move ---------------------------------------------------------------------------
    def _finish_files(self, files: list[_File], result: ApplyResult, *, moving: bool) -> None:
        if moving:
            self.settings.processed_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            if f.waiting:
                continue
            if moving:
                try:
                    os.replace(f.path, self.settings.processed_dir / f.name)
                except FileNotFoundError:
                    continue  # moved by a concurrent pass; its events were deduplicated
                result.files_applied += 1

    # -- no API call needed ----------------------------------------------------------------
    def _erase(self, fresh, result: ApplyResult) -> set[str]:
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
        # Events of this pass about an erased contact keep their id (dedupe), not their content:
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
        at_ms = event_time_ms(event, record) or ts_to_ms(utcnow())
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


class _StageClock:
    """Adds the seconds since the previous lap to `result.stage_seconds[stage]`."""

    def __init__(self, result: ApplyResult) -> None:
        self.result = result
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        seconds = self.result.stage_seconds
        seconds[stage] = round(seconds.get(stage, 0.0) + now - self.last, 4)
        self.last = now


async def apply_files(settings: Settings, paths: list[Path], *, moving: bool = True) -> ApplyResult:
    """Apply these webhook files as one pass: inbox files are moved to processed/ (or
    quarantine/); with `moving=False` (replay) a file is re-applied where it lies."""
    result = ApplyResult()
    settings.ensure_dirs()
    started = time.time()
    async with OrgClients(settings) as clients:
        with open_warehouse(settings) as conn:
            applier = InboxApplier(settings, clients, conn)
            try:
                await applier.apply_pass(paths, result, moving=moving)
            finally:
                applier.erase_in_files(result)  # what the warehouse erased leaves the files too
                result.api_calls = clients.calls_by_endpoint()
    log.info("webhook pass: %d file(s), %d event(s) applied, %d conversation(s) fetched "
             "(%d from payloads), API calls %s, seconds %s", result.files_applied,
             result.events_applied, result.conversations_refetched,
             result.conversations_from_payloads, result.api_calls, result.stage_seconds)
    if moving and (result.files_applied or result.files_quarantined):
        append_json_line(settings.home / TIMINGS_LOG, {
            "kind": "apply", "started_at": round(started, 3), "finished_at": round(time.time(), 3),
            "files": result.files_applied, "events_applied": result.events_applied,
            "stage_seconds": result.stage_seconds, "api_calls": result.api_calls})
    return result


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
