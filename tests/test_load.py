"""Bulk upserts: keys never duplicate, the last write of a key wins, a rollback leaves nothing."""

import duckdb
import pytest

from drift_pipeline.timeutil import ms_to_ts
from drift_pipeline.warehouse import schema
from drift_pipeline.warehouse.load import transaction, upsert


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    schema.create_raw_schema(connection)
    yield connection
    connection.close()


def _message(mid, body="hi", cid=1):
    return {"org_id": 9, "conversation_id": cid, "message_id": mid, "created_at": ms_to_ts(1_700_000_000_000 + mid),
            "message_type": "chat", "author_type": "contact", "author_id": 5, "is_bot": False, "body": body}


def test_upsert_is_idempotent_on_keys(conn):
    upsert(conn, schema.MESSAGES, [_message(1), _message(2)])
    upsert(conn, schema.MESSAGES, [_message(1), _message(2)])
    assert conn.execute("SELECT count(*) FROM raw.messages").fetchall() == [(2,)]


def test_upsert_updates_existing_rows_and_last_duplicate_in_batch_wins(conn):
    upsert(conn, schema.MESSAGES, [_message(1, "old")])
    upsert(conn, schema.MESSAGES, [_message(1, "first"), _message(1, "second"), _message(3)])
    assert conn.execute("SELECT message_id, body FROM raw.messages ORDER BY 1").fetchall() == [
        (1, "second"), (3, "hi")]


def test_same_message_id_in_two_orgs_are_two_rows(conn):
    other = dict(_message(1), org_id=10)
    upsert(conn, schema.MESSAGES, [_message(1), other])
    assert conn.execute("SELECT count(*) FROM raw.messages").fetchall() == [(2,)]


def test_list_columns_round_trip(conn):
    row = {"org_id": 9, "conversation_id": 7, "status": "open", "participant_user_ids": [3, 4], "tags": ["vip"]}
    upsert(conn, schema.CONVERSATIONS, [row])
    upsert(conn, schema.CONVERSATIONS, [dict(row, participant_user_ids=[4], tags=[])])
    assert conn.execute("SELECT participant_user_ids, tags FROM raw.conversations").fetchall() == [([4], [])]


def test_failed_transaction_leaves_tables_as_they_were(conn):
    upsert(conn, schema.MESSAGES, [_message(1)])
    with pytest.raises(RuntimeError):
        with transaction(conn):
            upsert(conn, schema.MESSAGES, [_message(2)])
            raise RuntimeError("killed midway")
    assert conn.execute("SELECT message_id FROM raw.messages").fetchall() == [(1,)]
