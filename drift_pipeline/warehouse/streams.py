"""Raw-table queries of the meetings, playbooks and accounts streams: what is stored already
(meetings' last `updatedAt`, observed changes, when each playbook was first seen) and the one
write that is not an upsert (playbooks Drift no longer lists). DuckDB and Postgres SQL, like
`warehouse/raw.py`; the upserts go through `load.upsert` in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def stored_meeting_updates(conn, org_id: int, slugs: Iterable[str]) -> dict[str, datetime | None]:
    """{slug: stored updated_at} for the slugs of this org already in `raw.meetings`."""
    wanted = sorted(set(slugs))
    if not wanted:
        return {}
    return dict(conn.execute("SELECT slug, updated_at FROM raw.meetings WHERE org_id = ? "
                             "AND slug IN (SELECT unnest(?::VARCHAR[]))", [org_id, wanted]).fetchall())


def stored_meeting_changes(conn, org_id: int, slugs: Iterable[str]) -> set[tuple[str, datetime]]:
    """(slug, updated_at) already recorded in `raw.meeting_changes` for these slugs."""
    wanted = sorted(set(slugs))
    if not wanted:
        return set()
    return set(conn.execute("SELECT slug, updated_at FROM raw.meeting_changes WHERE org_id = ? "
                            "AND slug IN (SELECT unnest(?::VARCHAR[]))", [org_id, wanted]).fetchall())


def playbooks_first_seen(conn, org_id: int) -> dict[int, datetime]:
    """{playbook id: first_seen_at} of every playbook this org ever listed."""
    return dict(conn.execute("SELECT playbook_id, first_seen_at FROM raw.playbooks WHERE org_id = ?",
                             [org_id]).fetchall())


def unlist_playbooks(conn, org_id: int, listed_ids: Iterable[int], now: datetime) -> int:
    """Playbooks of this org missing from today's list (disabled, or gone) stay, marked
    `currently_listed = false`; returns how many changed."""
    ids = sorted(set(listed_ids)) or [-1]
    return len(conn.execute(
        "UPDATE raw.playbooks SET currently_listed = false, synced_at = ? WHERE org_id = ? "
        "AND currently_listed AND playbook_id NOT IN (SELECT unnest(?::BIGINT[])) RETURNING playbook_id",
        [now, org_id, ids]).fetchall())


def meetings_scheduled_by(conn, org_id: int, contact_id: int) -> list[str]:
    """Slugs of this org's meetings whose scheduler is the contact."""
    return [r[0] for r in conn.execute("SELECT slug FROM raw.meetings WHERE org_id = ? AND scheduler_contact_id = ?",
                                       [org_id, contact_id]).fetchall()]


def unrecorded_meeting_states(conn) -> int:
    """Meetings whose stored `updated_at` has no row in `raw.meeting_changes`: a change the
    stream stored without recording it (0 when every stored state was recorded)."""
    return conn.execute(
        "SELECT count(*) FROM raw.meetings m WHERE m.updated_at IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM raw.meeting_changes c WHERE c.org_id = m.org_id AND c.slug = m.slug "
        "AND c.updated_at = m.updated_at)").fetchall()[0][0]


def orphan_playbook_goals(conn) -> int:
    """Defined goals whose playbook is not in `raw.playbooks`."""
    return conn.execute(
        "SELECT count(*) FROM raw.playbook_goals_defined g WHERE NOT EXISTS (SELECT 1 FROM raw.playbooks p "
        "WHERE p.org_id = g.org_id AND p.playbook_id = g.playbook_id)").fetchall()[0][0]
