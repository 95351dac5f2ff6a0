"""One incremental pass over Drift's conversation list into `raw.*`.

The list endpoint is newest-first by `updatedAt` with no date filter, so a window is synced by
paging from the newest conversation until a page reaches past the window's start (minus the
overlap). Only conversations that are new, or whose `updatedAt` moved since they were stored,
cost detail and message calls. Each page lands in one transaction together with the job's
checkpoint cursor, so a killed job resumes from the last committed page.

Drift keeps no status history, so closes that happened before the pipeline watched are asked of
`POST /reports/conversations` (`firstCloseAt`, its own 60/min budget): one call per page of
fetched conversations, over their `updatedAt` range, stored as `raw.status_events` with source
`report` in the page's transaction.

No SQL here: what is stored already comes from `warehouse/raw.py`, the job's `raw.exports` row
is kept by `warehouse/sync_jobs.py`, rows are written with `load.upsert`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drift_pipeline.drift.errors import DriftAuthError, DriftBadRequest, DriftNotFound
from drift_pipeline.ingest import transform
from drift_pipeline.pii import hash_pii
from drift_pipeline.timeutil import ms_to_ts, ts_to_ms, utcnow
from drift_pipeline.warehouse import erasure, raw, schema, sync_jobs
from drift_pipeline.warehouse.audit import retention_horizon
from drift_pipeline.warehouse.load import transaction, upsert

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 100


@dataclass
class SyncStats:
    """What one sync job did; becomes Dagster metadata and the `raw.exports` row."""

    job_id: str
    org_id: int | None
    window_start: datetime
    window_end: datetime
    list_from: datetime
    listing_floor: datetime | None = None
    newest_listed_at: datetime | None = None
    resumed_from_job: str | None = None
    pages: int = 0
    conversations_listed: int = 0
    conversations_in_window: int = 0
    conversations_fetched: int = 0
    conversations_skipped: int = 0
    contacts_fetched: int = 0
    users_fetched: int = 0
    report_calls: int = 0
    closes_from_reports: int = 0
    rows: Counter = field(default_factory=Counter)
    api_calls: int = 0
    responses_429: int = 0
    min_remaining: int | None = None
    rate_limit: int | None = None
    elapsed_seconds: float = 0.0

    def as_metadata(self) -> dict:
        return {
            "job_id": self.job_id,
            "org_id": self.org_id,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "listed_down_to": (self.listing_floor or self.list_from).isoformat(),
            "list_pages": self.pages,
            "conversations_listed": self.conversations_listed,
            "conversations_in_window": self.conversations_in_window,
            "conversations_fetched": self.conversations_fetched,
            "conversations_skipped": self.conversations_skipped,
            "contacts_fetched": self.contacts_fetched,
            "report_calls": self.report_calls,
            "closes_from_reports": self.closes_from_reports,
            "api_calls": self.api_calls,
            "responses_429": self.responses_429,
            "rate_limit_per_minute": self.rate_limit,
            "rate_limit_min_remaining": self.min_remaining,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            **{f"rows_upserted_{name}": count for name, count in sorted(self.rows.items())},
        }


# What a webhook's message must carry to stand in for the messages page: every field
# `transform.message_row` reads that Drift always sends (buttons, context and attributes are
# not stored).
_MESSAGE_FIELDS = ("id", "createdAt", "type", "author", "body")


def complete_message(message) -> bool:
    """True when a `new_message` payload's message is the whole message, as the messages page
    would answer it (see DECISIONLOG: what is trusted from webhook payloads)."""
    if not isinstance(message, dict) or any(key not in message for key in _MESSAGE_FIELDS):
        return False
    author = message["author"]
    created = message["createdAt"]
    return (isinstance(author, dict) and isinstance(author.get("type"), str)
            and transform.int_or_none(message["id"]) is not None
            and isinstance(created, int) and not isinstance(created, bool)
            and isinstance(message["type"], str))


@dataclass
class TouchedConversation:
    """What one webhook apply pass holds about a conversation before anything is fetched."""

    payload_messages: dict[int, dict] = field(default_factory=dict)  # complete messages by id
    partial_payload: bool = False  # a new_message without the whole message
    newest_change_ms: int | None = None  # newest exact change time the events give

    def saw_change(self, at_ms: int | None) -> None:
        if at_ms is not None and (self.newest_change_ms is None or at_ms > self.newest_change_ms):
            self.newest_change_ms = at_ms


@dataclass
class TouchedFetch:
    """One org's fetches for a webhook pass, ready to be written (`write_touched`)."""

    fetched: list = field(default_factory=list)  # (detail, messages) per conversation
    stored: dict = field(default_factory=dict)
    contacts: list = field(default_factory=list)
    report_closes: dict = field(default_factory=dict)
    users: list | None = None
    details_fetched: int = 0
    conversations_paged: int = 0  # message pages fetched
    conversations_from_payloads: int = 0  # messages taken from the webhooks alone
    contacts_requested: int = 0  # named by contact events (re-fetched even when stored)


def _error_code(exc: BaseException) -> str:
    return getattr(exc, "code", None) or type(exc).__name__


class ConversationSync:
    """Syncs one window `[window_start, window_end)` of `updatedAt` for one org."""

    def __init__(self, client, conn, *, salt: str, org_id: int | None = None,
                 overlap: timedelta = timedelta(minutes=60), partition_keys: str = "",
                 full_window: bool = False):
        self.client = client
        self.full_window = full_window
        self.conn = conn
        self.salt = salt
        self.org_id = org_id
        self.overlap = overlap
        self.partition_keys = partition_keys
        self._contacts_seen: set[int] = set()
        self._users: list[dict] | None = None
        self._reports_available = True

    # -- what earlier runs left -------------------------------------------------------------
    def _listing_floor(self, list_from: datetime) -> datetime:
        """Where the newest-first listing may stop: below `list_from`, or, when an earlier
        successful run of this org listed everything from its own `list_from` (not later than
        ours) up to its newest `updatedAt`, below that newest `updatedAt` minus the overlap.
        Everything under it that changed since has a newer `updatedAt` (Drift moves it on every
        change), so it is listed above the floor; everything that did not is stored already."""
        covered = sync_jobs.covered_until(self.conn, self.org_id, list_from)
        if covered is None:
            return list_from
        return max(list_from, covered - self.overlap)

    # -- the pass --------------------------------------------------------------------------
    async def _resolve_org(self) -> None:
        if self.org_id is None:
            self.org_id = getattr(self.client, "org_id", None)
        if self.org_id is None:
            # A static token carries no org: the users list does (and is needed anyway).
            self._users = await self.client.list_users()
            if not self._users:
                raise RuntimeError("cannot tell the Drift org: /users/list answered no users")
            self.org_id = int(self._users[0]["orgId"])

    async def _fetch_conversation(self, conversation_id: int):
        try:
            detail, messages = await asyncio.gather(
                self.client.get_conversation(conversation_id),
                self.client.get_messages(conversation_id),
            )
        except DriftNotFound:
            log.warning("conversation %s is gone from Drift (404): not stored", conversation_id)
            return None
        return detail, messages

    async def _fetch_contacts(self, contact_ids: set[int]) -> list[dict]:
        async def one(contact_id: int):
            try:
                return await self.client.get_contact(contact_id)
            except DriftNotFound:
                return None

        found = await asyncio.gather(*(one(c) for c in sorted(contact_ids)))
        return [c for c in found if c]

    async def run(self, window_start: datetime, window_end: datetime) -> SyncStats:
        started = time.monotonic()
        list_from = window_start - self.overlap
        try:
            await self._resolve_org()
        except BaseException as exc:
            # Not even the org could be read (bad credentials, Drift unreachable): still a job.
            upsert(self.conn, schema.EXPORTS, [{
                "job_id": uuid.uuid4().hex, "kind": "sync", "window_start": window_start, "window_end": window_end,
                "partition_keys": self.partition_keys, "started_at": utcnow(),
                "finished_at": utcnow(), "pages": 0, "success": False, "error_code": _error_code(exc),
            }])
            raise
        stats = SyncStats(job_id=uuid.uuid4().hex, org_id=self.org_id, window_start=window_start,
                          window_end=window_end, list_from=list_from)
        resumed_job, cursor = sync_jobs.resumable_job(self.conn, self.org_id, window_start, window_end)
        stats.resumed_from_job = resumed_job
        stats.listing_floor = list_from if self.full_window else self._listing_floor(list_from)
        with transaction(self.conn):
            if resumed_job:
                sync_jobs.mark_interrupted(self.conn, resumed_job, utcnow())
            upsert(self.conn, schema.EXPORTS, [{
                "job_id": stats.job_id, "kind": "sync", "org_id": self.org_id, "window_start": window_start,
                "window_end": window_end, "partition_keys": self.partition_keys,
                "started_at": utcnow(), "page_token_checkpoint": cursor, "pages": 0,
                "list_from": list_from, "full_window": self.full_window,
            }])
        try:
            await self._pass(stats, cursor, list_from, window_end, resumed=cursor is not None)
            if self._users is None and (stats.conversations_fetched or not raw.has_users(self.conn, self.org_id)):
                self._users = await self.client.list_users()
            with transaction(self.conn):
                if self._users is not None:
                    now = utcnow()
                    stats.users_fetched = len(self._users)
                    stats.rows["users"] += upsert(self.conn, schema.USERS, [
                        transform.user_row(self.org_id, u, self.salt, now) for u in self._users])
                self._finish(stats, started, success=True)
        except BaseException as exc:
            self._finish(stats, started, success=False, error_code=_error_code(exc))
            raise
        return stats

    async def _pass(self, stats: SyncStats, cursor: str | None, list_from: datetime,
                    window_end: datetime, *, resumed: bool = False) -> None:
        floor = stats.listing_floor or list_from
        async for page in self.client.iter_conversation_pages(limit=LIST_PAGE_SIZE, cursor=cursor):
            if stats.pages == 0 and not resumed and page.items:
                # The top of the list: what this run leaves exact reaches up to here.
                stats.newest_listed_at = max(ms_to_ts(i["updatedAt"]) for i in page.items)
            stats.pages += 1
            stats.conversations_listed += len(page.items)
            in_window = [
                item for item in page.items
                if list_from <= ms_to_ts(item["updatedAt"]) < window_end
            ]
            stats.conversations_in_window += len(in_window)
            stored = raw.stored_conversation_state(self.conn, self.org_id, [int(i["id"]) for i in in_window])
            changed = [
                int(item["id"]) for item in in_window
                if int(item["id"]) not in stored
                or stored[int(item["id"])][0] < ms_to_ts(item["updatedAt"])
            ]
            stats.conversations_skipped += len(in_window) - len(changed)
            await self._fetch_and_store(stats, changed, stored, next_cursor=page.next_cursor)
            oldest = min((ms_to_ts(i["updatedAt"]) for i in page.items), default=None)
            if oldest is None or oldest < floor or not page.next_cursor:
                break

    async def _fetch_and_store(self, stats: SyncStats, conversation_ids: list[int], stored,
                               next_cursor: str | None = None) -> None:
        """Fetch detail + messages of these conversations (and contacts not seen yet) and
        upsert them in one transaction, with the job's checkpoint."""
        fetched = await asyncio.gather(*(self._fetch_conversation(c) for c in conversation_ids))
        fetched = self._suppress_expired(self._suppress_erased([f for f in fetched if f is not None]))
        stats.conversations_fetched += len(fetched)
        contact_ids = {
            int(d["contactId"]) for d, _ in fetched if d.get("contactId") is not None
        } - self._contacts_seen
        contact_ids -= raw.stored_contact_ids(self.conn, self.org_id, contact_ids)
        self._contacts_seen |= contact_ids
        contacts = await self._fetch_contacts(contact_ids)
        stats.contacts_fetched += len(contacts)
        report_closes = await self._report_first_closes(stats, [detail for detail, _ in fetched])
        self._commit_page(stats, fetched, stored, contacts, next_cursor, report_closes)

    async def _report_first_closes(self, stats: SyncStats, details: list[dict]) -> dict[int, datetime]:
        """Drift's own first close of these conversations (one report call over their
        `updatedAt` range), for those without one stored yet: the close of a conversation that
        was closed, reopened and closed again before we looked is not its `updatedAt`."""
        wanted = {int(d["id"]): int(d["updatedAt"]) for d in details if d.get("updatedAt") is not None}
        for cid in raw.conversations_with_report_close(self.conn, self.org_id, sorted(wanted)):
            wanted.pop(cid)
        if not wanted or not self._reports_available:
            return {}
        try:
            report = await self.client.conversation_report(min(wanted.values()), max(wanted.values()),
                                                           ["firstCloseAt"])
        except (DriftBadRequest, DriftNotFound, DriftAuthError) as exc:
            if isinstance(exc, DriftAuthError) and exc.status != 403:
                raise
            # Without the reports endpoint the marts fall back to observed closes; say so once.
            self._reports_available = False
            log.warning("Drift's conversation report is unavailable (%s): first closes from before the "
                        "pipeline watched fall back to the last updatedAt", exc.code)
            return {}
        stats.report_calls += 1
        closes = transform.report_first_closes(report, set(wanted))
        # A close already recorded at that very instant (by its webhook) keeps its source.
        for cid in raw.conversations_closed_at(self.conn, self.org_id, closes):
            closes.pop(cid)
        stats.closes_from_reports += len(closes)
        return closes

    async def refetch_contacts(self, contact_ids: list[int]) -> int:
        """Re-fetch and upsert contacts (contact webhooks); erased contacts stay erased."""
        await self._resolve_org()
        erased = erasure.erased_contact_hashes(self.conn, self.org_id)
        wanted = {c for c in contact_ids if hash_pii(c, self.salt) not in erased}
        contacts = await self._fetch_contacts(wanted)
        now = utcnow()
        with transaction(self.conn):
            return upsert(self.conn, schema.CONTACTS, [transform.contact_row(self.org_id, c, self.salt, now)
                                                       for c in contacts])

    async def refetch(self, conversation_ids: list[int]) -> SyncStats:
        """Re-fetch and upsert the given conversations whatever their `updatedAt` (webhooks,
        replay). A conversation Drift no longer knows (404) is skipped."""
        await self._resolve_org()
        now = utcnow()
        stats = SyncStats(job_id="", org_id=self.org_id, window_start=now, window_end=now, list_from=now)
        ids = sorted(set(conversation_ids))
        await self._fetch_and_store(stats, ids, raw.stored_conversation_state(self.conn, self.org_id, ids))
        if self._users is None and (stats.conversations_fetched and not raw.has_users(self.conn, self.org_id)):
            self._users = await self.client.list_users()
            with transaction(self.conn):
                stats.rows["users"] += upsert(self.conn, schema.USERS, [
                    transform.user_row(self.org_id, u, self.salt, now) for u in self._users])
        return stats

    async def fetch_touched(self, touched: dict[int, TouchedConversation],
                            contact_ids: set[int] = frozenset()) -> TouchedFetch:
        """Fetch what a webhook pass needs, each thing once: the detail of every touched
        conversation; its message pages only when the webhooks cannot stand in for them (the
        conversation is not stored yet, a payload is partial, an edit names a message not stored,
        or the detail's `updatedAt` is newer than every change the stored row and the events
        account for); the contacts named by contact events and those of new conversations; one
        report call for first closes; the users when none are stored. Writes nothing."""
        await self._resolve_org()
        out = TouchedFetch()
        ids = sorted(touched)
        out.stored = raw.stored_conversation_state(self.conn, self.org_id, ids)
        edit_targets = {
            int(m["editedMessageId"]): cid for cid, t in touched.items()
            for m in t.payload_messages.values() if transform.int_or_none(m.get("editedMessageId")) is not None}
        in_pass = {mid for t in touched.values() for mid in t.payload_messages}
        unknown_targets = set(edit_targets) - in_pass
        unknown_targets -= raw.stored_message_ids(self.conn, self.org_id, unknown_targets)
        paged = {cid for cid in ids if cid not in out.stored or touched[cid].partial_payload}
        paged |= {edit_targets[mid] for mid in unknown_targets}

        async def detail(cid: int):
            try:
                return await self.client.get_conversation(cid)
            except DriftNotFound:
                log.warning("conversation %s is gone from Drift (404): not stored", cid)
                return None

        async def pages(cid: int):
            try:
                return await self.client.get_messages(cid)
            except DriftNotFound:
                return None

        first = sorted(paged)
        answers = await asyncio.gather(*(detail(c) for c in ids), *(pages(c) for c in first))
        details = dict(zip(ids, answers[:len(ids)]))
        messages = dict(zip(first, answers[len(ids):]))
        out.details_fetched = len(ids)
        # A change nothing in the pass explains (a message whose webhook has not arrived, a
        # status change without changedAt): the pages tell what it was.
        late = sorted(cid for cid in ids if cid not in paged and details[cid] is not None
                      and self._unexplained_change(details[cid], out.stored[cid], touched[cid]))
        messages.update(zip(late, await asyncio.gather(*(pages(c) for c in late))))
        out.conversations_paged = len(first) + len(late)
        fetched = []
        for cid in ids:
            if details[cid] is None:
                continue
            if cid in messages:
                if messages[cid] is None:
                    continue
                # A webhook may be ahead of the messages page: keep what either holds.
                by_id = {**touched[cid].payload_messages,
                         **{int(m["id"]): m for m in messages[cid]}}
            else:
                by_id = touched[cid].payload_messages
                out.conversations_from_payloads += 1
            fetched.append((details[cid], [by_id[k] for k in sorted(by_id)]))
        out.fetched = self._suppress_expired(self._suppress_erased(fetched))
        erased = erasure.erased_contact_hashes(self.conn, self.org_id)
        named = {c for c in contact_ids if hash_pii(c, self.salt) not in erased}
        new = {int(d["contactId"]) for d, _ in out.fetched if d.get("contactId") is not None}
        new -= self._contacts_seen | named
        new -= raw.stored_contact_ids(self.conn, self.org_id, new)
        self._contacts_seen |= new | named
        out.contacts = await self._fetch_contacts(new | named)
        out.contacts_requested = sum(1 for c in out.contacts if int(c["id"]) in named)
        stats = SyncStats(job_id="", org_id=self.org_id, window_start=utcnow(),
                          window_end=utcnow(), list_from=utcnow())
        out.report_closes = await self._report_first_closes(stats, [d for d, _ in out.fetched])
        if self._users is None and out.fetched and not raw.has_users(self.conn, self.org_id):
            self._users = out.users = await self.client.list_users()
        return out

    @staticmethod
    def _unexplained_change(detail: dict, stored: tuple, touched: TouchedConversation) -> bool:
        updated = transform.int_or_none(detail.get("updatedAt"))
        if updated is None:
            return True
        known = [ts_to_ms(stored[0])] if stored and stored[0] is not None else []
        known += [m["createdAt"] for m in touched.payload_messages.values()]
        if touched.newest_change_ms is not None:
            known.append(touched.newest_change_ms)
        return not known or updated > max(known)

    def write_touched(self, fetch: TouchedFetch) -> SyncStats:
        """Upsert what `fetch_touched` fetched; inside the caller's transaction."""
        now = utcnow()
        stats = SyncStats(job_id="", org_id=self.org_id, window_start=now, window_end=now, list_from=now)
        stats.conversations_fetched = len(fetch.fetched)
        self._write_rows(stats, fetch.fetched, fetch.stored, fetch.contacts, fetch.report_closes)
        if fetch.users is not None:
            stats.rows["users"] += upsert(self.conn, schema.USERS, [
                transform.user_row(self.org_id, u, self.salt, now) for u in fetch.users])
        return stats

    def _suppress_erased(self, fetched):
        """Conversations of erased contacts come back without the contact and message bodies."""
        erased = erasure.erased_contact_hashes(self.conn, self.org_id)
        if not erased:
            return fetched
        kept = []
        for detail, messages in fetched:
            if detail.get("contactId") is not None and hash_pii(detail["contactId"], self.salt) in erased:
                detail = dict(detail, contactId=None)
                messages = [dict(m, body=None) for m in messages]
            kept.append((detail, messages))
        return kept

    def _suppress_expired(self, fetched):
        """Bodies older than the retention window (set by the last `retention` pass) are not
        stored again when a conversation is re-fetched: retention holds between passes."""
        horizon = retention_horizon(self.conn, utcnow())
        if horizon is None:
            return fetched
        horizon_ms = ts_to_ms(horizon)
        return [
            (detail, [dict(m, body=None) if (m.get("createdAt") or 0) < horizon_ms else m for m in messages])
            for detail, messages in fetched
        ]

    def _commit_page(self, stats: SyncStats, fetched, stored, contacts, next_cursor,
                     report_closes: dict[int, datetime] | None = None) -> None:
        with transaction(self.conn):
            self._write_rows(stats, fetched, stored, contacts, report_closes)
            if stats.job_id:
                sync_jobs.checkpoint_page(self.conn, stats.job_id, next_cursor)

    def _write_rows(self, stats: SyncStats, fetched, stored, contacts,
                    report_closes: dict[int, datetime] | None = None) -> None:
        """Upsert fetched conversations, their messages, participants, status changes and
        contacts; inside the caller's transaction."""
        now = utcnow()
        conversations, messages, participants, status_events = [], [], [], []
        for detail, message_list in fetched:
            row = transform.conversation_row(self.org_id, detail, now)
            conversations.append(row)
            messages.extend(transform.message_row(self.org_id, row["conversation_id"], m, now) for m in message_list)
            participants.extend(transform.participant_rows(self.org_id, detail, now))
            previous_status = stored.get(row["conversation_id"], (None, None))[1]
            if row["status"] and row["status"] != previous_status:
                status_events.append(transform.status_event_row(
                    self.org_id, row["conversation_id"], row["status"], row["updated_at"], "poll", now))
        status_events.extend(transform.status_event_row(self.org_id, cid, "closed", closed_at, "report", now)
                             for cid, closed_at in (report_closes or {}).items())
        stats.rows["conversations"] += upsert(self.conn, schema.CONVERSATIONS, conversations)
        stats.rows["messages"] += upsert(self.conn, schema.MESSAGES, messages)
        if conversations:
            # Whoever is not in the fresh detail has left the conversation (kept, not current).
            raw.retire_participants(self.conn, self.org_id, [c["conversation_id"] for c in conversations], now)
        stats.rows["participants"] += upsert(self.conn, schema.PARTICIPANTS, participants)
        stats.rows["status_events"] += upsert(self.conn, schema.STATUS_EVENTS, status_events)
        stats.rows["contacts"] += upsert(self.conn, schema.CONTACTS, [
            transform.contact_row(self.org_id, c, self.salt, now) for c in contacts])

    def _finish(self, stats: SyncStats, started: float, *, success: bool, error_code: str | None = None) -> None:
        client_stats = getattr(self.client, "stats", None)
        if client_stats is not None:
            stats.api_calls = client_stats.calls
            stats.responses_429 = client_stats.responses_429
            stats.min_remaining = client_stats.min_remaining
            stats.rate_limit = client_stats.rate_limit
        stats.elapsed_seconds = time.monotonic() - started
        sync_jobs.finish_job(
            self.conn, stats.job_id, finished_at=utcnow(), success=success, error_code=error_code,
            api_calls=stats.api_calls, conversations_listed=stats.conversations_listed,
            conversations_fetched=stats.conversations_fetched,
            conversations_skipped=stats.conversations_skipped, rate_limited=stats.responses_429,
            newest_listed_at=stats.newest_listed_at if success else None,
            report_calls=stats.report_calls)
        log.info("sync job %s %s: %s", stats.job_id, "succeeded" if success else f"failed ({error_code})",
                 {k: v for k, v in stats.as_metadata().items() if k != "job_id"})
