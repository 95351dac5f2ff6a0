"""Meetings, playbooks and accounts from Drift into `raw.*`: one pass per stream and org.

Drift serves a meeting only while its slot starts within the last 30 days of *its* clock, so
every run asks for that whole window (30 days back to `MEETINGS_AHEAD` ahead) and keeps what it
saw: `raw.meetings` holds each meeting's newest observed state (a meeting that left the window
keeps its last row), `raw.meeting_changes` every (slug, updatedAt) observed with its status and
slot, so cancellations, rebooks and reschedules keep their history. `meetingNotes` is stored
only as a salted hash. Drift's clock is read from its answers' `Date` header: a first call
made before it is known uses ours, and asks again for whatever part of Drift's window it missed.

`/playbooks/list` lists only enabled playbooks: every playbook ever listed stays, with
`first_seen_at`, `last_listed_at` and `currently_listed`. Accounts are listed page by page,
deleted ones included.

A stream whose optional scope the app lacks (403) raises `DriftMissingScope`: the caller skips
that stream and goes on. No SQL here: see `warehouse/streams.py`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drift_pipeline.ingest import transform
from drift_pipeline.pii import hash_pii
from drift_pipeline.timeutil import ts_to_ms, utcnow
from drift_pipeline.warehouse import erasure, schema, streams
from drift_pipeline.warehouse.load import transaction, upsert

log = logging.getLogger(__name__)

MEETINGS_BEHIND = timedelta(days=30)  # what Drift still serves
MEETINGS_AHEAD = timedelta(days=180)  # the contract asks for at least 90 days ahead


@dataclass
class StreamStats:
    """What one stream pass did for one org."""

    stream: str
    org_id: int | None
    rows: Counter = field(default_factory=Counter)
    listed: int = 0
    api_calls: int = 0
    missing_scope: str | None = None


def meetings_window(drift_now: datetime) -> tuple[datetime, datetime]:
    """The slot range every run asks for: all Drift still serves, and the meetings ahead."""
    return drift_now - MEETINGS_BEHIND, drift_now + MEETINGS_AHEAD


async def fetch_served_meetings(client) -> list[dict]:
    """Every meeting Drift serves now (see the module docstring for its clock)."""
    known = client.server_now()
    start, end = meetings_window(known or utcnow())
    found = {m.get("slug"): m for m in await client.get_meetings(ts_to_ms(start), ts_to_ms(end))}
    if known is None and client.server_now() is not None:
        # Our clock stood in for Drift's: ask for the part of Drift's window the call missed.
        drift_start, drift_end = meetings_window(client.server_now())
        for low, high in ((drift_start, min(drift_end, start)), (max(drift_start, end), drift_end)):
            if low < high:
                found.update({m.get("slug"): m for m in await client.get_meetings(ts_to_ms(low), ts_to_ms(high))})
    return [m for slug, m in found.items() if slug not in (None, "")]


def store_meetings(conn, org_id: int, meetings: list[dict], *, salt: str, source: str,
                   now: datetime | None = None) -> Counter:
    """Upsert these observed meetings (inside the caller's transaction): a row older than the
    stored one (a late webhook) changes nothing; each (slug, updatedAt) not seen before becomes
    a `raw.meeting_changes` row. A meeting scheduled by an erased contact comes in without the
    contact, notes hash or time zone. Returns rows written per table."""
    now = now or utcnow()
    erased = erasure.erased_contact_hashes(conn, org_id)
    rows = []
    for meeting in meetings:
        if not isinstance(meeting, dict) or meeting.get("slug") in (None, ""):
            log.warning("a meeting without a slug was left out")
            continue
        row = transform.meeting_row(org_id, meeting, salt, now)
        if row["scheduler_contact_id"] is not None and hash_pii(row["scheduler_contact_id"], salt) in erased:
            row.update(scheduler_contact_id=None, meeting_notes_hash=None, end_user_time_zone=None)
        rows.append(row)
    newest: dict[str, dict] = {}
    for row in rows:  # one row per slug: the newest state the batch holds
        held = newest.get(row["slug"])
        if held is None or _newer_or_same(row["updated_at"], held["updated_at"]):
            newest[row["slug"]] = row
    stored = streams.stored_meeting_updates(conn, org_id, newest)
    current = [row for slug, row in newest.items()
               if slug not in stored or _newer_or_same(row["updated_at"], stored[slug])]
    seen = streams.stored_meeting_changes(conn, org_id, (r["slug"] for r in rows))
    changes, added = [], set()
    for row in rows:
        key = (row["slug"], row["updated_at"])
        if row["updated_at"] is not None and key not in seen and key not in added:
            added.add(key)
            changes.append(transform.meeting_change_row(row, source, now))
    return Counter({"meetings": upsert(conn, schema.MEETINGS, current),
                    "meeting_changes": upsert(conn, schema.MEETING_CHANGES, changes)})


def _newer_or_same(candidate: datetime | None, held: datetime | None) -> bool:
    return held is None or (candidate is not None and candidate >= held)


async def sync_meetings(client, conn, *, org_id: int, salt: str) -> StreamStats:
    stats = StreamStats("meetings", org_id)
    calls = client.stats.calls
    meetings = await fetch_served_meetings(client)
    stats.api_calls = client.stats.calls - calls
    stats.listed = len(meetings)
    with transaction(conn):
        stats.rows = store_meetings(conn, org_id, meetings, salt=salt, source="poll")
    return stats


async def sync_playbooks(client, conn, *, org_id: int) -> StreamStats:
    """Upsert today's list; playbooks missing from it become `currently_listed = false`."""
    stats = StreamStats("playbooks", org_id)
    calls = client.stats.calls
    listed = [p for p in await client.list_playbooks() if isinstance(p, dict) and p.get("id") is not None]
    stats.listed = len(listed)
    stats.api_calls = client.stats.calls - calls
    now = utcnow()
    with transaction(conn):
        first_seen = streams.playbooks_first_seen(conn, org_id)
        rows = [transform.playbook_row(org_id, p, first_seen.get(int(p["id"]), now), now) for p in listed]
        stats.rows["playbooks"] = upsert(conn, schema.PLAYBOOKS, rows)
        stats.rows["playbooks_unlisted"] = streams.unlist_playbooks(conn, org_id, [r["playbook_id"] for r in rows], now)
        stats.rows["playbook_goals_defined"] = upsert(conn, schema.PLAYBOOK_GOALS_DEFINED, [
            goal for p in listed for goal in transform.playbook_goal_rows(org_id, p, now)])
    return stats


async def sync_accounts(client, conn, *, org_id: int) -> StreamStats:
    """Every account, deleted ones included (kept with `deleted = true`)."""
    stats = StreamStats("accounts", org_id)
    calls = client.stats.calls
    accounts: dict[str, dict] = {}
    async for page in client.iter_account_pages():
        accounts.update({str(a["accountId"]): a for a in page.items
                         if isinstance(a, dict) and a.get("accountId") not in (None, "")})
    stats.listed = len(accounts)
    stats.api_calls = client.stats.calls - calls
    now = utcnow()
    with transaction(conn):
        stats.rows["accounts"] = upsert(conn, schema.ACCOUNTS, [
            transform.account_row(org_id, a, now) for a in accounts.values()])
    return stats
