"""Raw-table reads the webhook apply pass needs: which events were applied, which messages are
stored. Plain functions over a DuckDB connection; the writes go through `load.upsert`."""

from __future__ import annotations

from collections.abc import Iterable


def applied_event_ids(conn, event_ids: Iterable[str]) -> set[str]:
    """The ids among `event_ids` already recorded in `raw.webhook_events` (any org: the id is a
    hash of the whole payload, the org included)."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT event_id FROM raw.webhook_events WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [wanted]).fetchall()
    return {r[0] for r in rows}


def stored_message_ids(conn, org_id: int, message_ids: Iterable[int]) -> set[int]:
    """The ids among `message_ids` stored for this org (whatever their conversation)."""
    wanted = sorted(set(message_ids))
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT message_id FROM raw.messages WHERE org_id = ? "
        "AND message_id IN (SELECT unnest(?::BIGINT[]))", [org_id, wanted]).fetchall()
    return {r[0] for r in rows}


def applied_widget_event_ids(conn, event_ids: Iterable[str]) -> set[str]:
    """The ids among `event_ids` already in `raw.widget_events`."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT event_id FROM raw.widget_events WHERE event_id IN (SELECT unnest(?::VARCHAR[]))",
        [wanted]).fetchall()
    return {r[0] for r in rows}


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
