"""Raw-table queries of the sync and webhook apply passes: what is stored already (conversations,
contacts, messages, users, closes, applied events) and the one write that is not an upsert
(participants who left). Plain functions over a warehouse connection (DuckDB or Postgres: the
SQL is written for both); the other writes go through `load.upsert`, inside the caller's
transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def _found(conn, sql: str, params: list, ids: Iterable) -> set:
    """The first column of `sql`'s rows, run with `params` and then the distinct `ids` as one
    array parameter; nothing is asked for no ids."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    return {r[0] for r in conn.execute(sql, [*params, wanted]).fetchall()}


def applied_event_ids(conn, event_ids: Iterable[str]) -> set[str]:
    """The ids among `event_ids` already recorded in `raw.webhook_events` (any org: the id is a
    hash of the whole payload, the org included)."""
    return _found(conn, "SELECT event_id FROM raw.webhook_events "
                  "WHERE event_id IN (SELECT unnest(?::VARCHAR[]))", [], event_ids)


def stored_message_ids(conn, org_id: int, message_ids: Iterable[int]) -> set[int]:
    """The ids among `message_ids` stored for this org (whatever their conversation)."""
    return _found(conn, "SELECT DISTINCT message_id FROM raw.messages WHERE org_id = ? "
                  "AND message_id IN (SELECT unnest(?::BIGINT[]))", [org_id], message_ids)


def applied_widget_event_ids(conn, event_ids: Iterable[str]) -> set[str]:
    """The ids among `event_ids` already in `raw.widget_events`."""
    return _found(conn, "SELECT event_id FROM raw.widget_events "
                  "WHERE event_id IN (SELECT unnest(?::VARCHAR[]))", [], event_ids)


def single_org_conversations(conn, conversation_ids: Iterable[int]) -> dict[int, int]:
    """{conversation id: org} for the ids exactly one org has (ids are per workspace: an id two
    workspaces share names neither)."""
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return {}
    return dict(conn.execute(
        "SELECT conversation_id, min(org_id) FROM raw.conversations "
        "WHERE conversation_id IN (SELECT unnest(?::BIGINT[])) GROUP BY conversation_id "
        "HAVING count(DISTINCT org_id) = 1", [wanted]).fetchall())


def known_orgs(conn) -> list[int]:
    """Every org the warehouse holds conversations or users of."""
    return [r[0] for r in conn.execute(
        "SELECT org_id FROM raw.conversations UNION SELECT org_id FROM raw.users").fetchall()]


def warehouse_org_ids(conn) -> list[int]:
    """The Drift orgs the warehouse holds data of (contacts included), in order."""
    return [r[0] for r in conn.execute(
        "SELECT org_id FROM raw.conversations UNION SELECT org_id FROM raw.users "
        "UNION SELECT org_id FROM raw.contacts ORDER BY 1").fetchall()]


def stored_conversation_state(conn, org_id: int,
                              conversation_ids: Iterable[int]) -> dict[int, tuple[datetime, str]]:
    """{conversation id: (updated_at, status)} of the ids stored for this org."""
    wanted = list(conversation_ids)
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT conversation_id, updated_at, status FROM raw.conversations "
        "WHERE org_id = ? AND conversation_id IN (SELECT unnest(?::BIGINT[]))",
        [org_id, wanted],
    ).fetchall()
    return {cid: (updated_at, status) for cid, updated_at, status in rows}


def stored_contact_ids(conn, org_id: int, contact_ids: Iterable[int]) -> set[int]:
    """The ids among `contact_ids` stored for this org."""
    return _found(conn, "SELECT contact_id FROM raw.contacts WHERE org_id = ? "
                  "AND contact_id IN (SELECT unnest(?::BIGINT[]))", [org_id], contact_ids)


def conversations_with_report_close(conn, org_id: int, conversation_ids: Iterable[int]) -> set[int]:
    """The ids among `conversation_ids` that have a close from Drift's report stored."""
    return _found(conn, "SELECT DISTINCT conversation_id FROM raw.status_events WHERE org_id = ? "
                  "AND source = 'report' AND status = 'closed' "
                  "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org_id], conversation_ids)


def conversations_closed_at(conn, org_id: int, closes: dict[int, datetime]) -> set[int]:
    """The conversations among `closes` ({id: close time}) with a close stored at that very
    instant (whatever its source)."""
    if not closes:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT conversation_id FROM raw.status_events WHERE org_id = ? AND status = 'closed' "
        "AND (conversation_id, changed_at) IN (SELECT unnest(?::BIGINT[]), unnest(?::TIMESTAMP[]))",
        [org_id, list(closes), list(closes.values())],
    ).fetchall()
    return {r[0] for r in rows}


def has_users(conn, org_id: int) -> bool:
    """True when any user of this org is stored."""
    return bool(conn.execute(
        "SELECT count(*) FROM raw.users WHERE org_id = ?", [org_id]).fetchall()[0][0])


def retire_participants(conn, org_id: int, conversation_ids: list[int], synced_at: datetime) -> None:
    """Mark the current participants of these conversations as no longer current (kept, not
    deleted); the fresh detail's participants are upserted as current right after."""
    conn.execute(
        "UPDATE raw.participants SET is_current = false, synced_at = ? WHERE org_id = ? "
        "AND conversation_id IN (SELECT unnest(?::BIGINT[])) AND is_current",
        [synced_at, org_id, conversation_ids])
