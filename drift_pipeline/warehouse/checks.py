"""The raw tables' integrity queries the Dagster asset checks report (DuckDB or Postgres: the
SQL is written for both). Each returns one number; the checks decide what passes."""

from __future__ import annotations

from datetime import datetime


def _scalar(conn, sql: str):
    return conn.execute(sql).fetchall()[0][0]


def duplicate_conversation_keys(conn) -> int:
    """Conversation keys stored more than once (the primary key forbids it; a check proves it)."""
    return _scalar(conn, "SELECT count(*) FROM (SELECT org_id, conversation_id FROM raw.conversations "
                         "GROUP BY org_id, conversation_id HAVING count(*) > 1) AS dupes")


def duplicate_message_keys(conn) -> int:
    return _scalar(conn, "SELECT count(*) FROM (SELECT org_id, conversation_id, message_id "
                         "FROM raw.messages GROUP BY org_id, conversation_id, message_id "
                         "HAVING count(*) > 1) AS dupes")


def orphan_messages(conn) -> int:
    """Messages whose conversation is not stored."""
    return _scalar(conn, "SELECT count(*) FROM raw.messages m WHERE NOT EXISTS (SELECT 1 FROM "
                         "raw.conversations c WHERE c.org_id = m.org_id "
                         "AND c.conversation_id = m.conversation_id)")


def newest_conversation_update(conn) -> datetime | None:
    """The latest `updated_at` stored (naive UTC), or None for an empty table."""
    return _scalar(conn, "SELECT max(updated_at) FROM raw.conversations")
