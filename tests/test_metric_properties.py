"""Property-based tests of the metric maths (Hypothesis): conversations of random messages
(contacts, two agents, bots, private notes, deleted replies, messages at the same instant) built
by dbt into fct_conversations, compared column by column with the independent Python reading of
the definitions (tests/reference_metrics.py): first response and every reply-breadth column.

Each example is one dbt run over a whole generated workspace (many conversations at once), so
a few examples cover hundreds of conversations in under a minute."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from drift_pipeline.warehouse import schema
from reference_metrics import REPLY_COLUMNS, reference_fct_conversations, reference_reply_breadth
from test_dbt_models import FIRST_SYNC, assert_all_passed, dbt, load_raw

pytestmark = pytest.mark.slow
BASE = datetime(2026, 10, 29, 14, 0, tzinfo=timezone.utc)
ORG = 1
FIRST_RESPONSE_COLUMNS = ("first_contact_message_at", "first_agent_message_at", "first_responder_user_id",
                          "first_response_seconds", "message_count", "contact_message_count",
                          "agent_message_count", "bot_message_count")
# Business-hours reply times follow the schedule, which the reference reads on its own in
# test_dbt_models; here the calendar maths.
CALENDAR_REPLY_COLUMNS = tuple(c for c in REPLY_COLUMNS if "business" not in c)

# (kind, author type, author id, bot): contact 900, agents 7 and 8, a bot user 99.
AUTHORS = [("chat", "contact", 900, False), ("chat", "user", 7, False), ("chat", "user", 8, False),
           ("chat", "user", 99, True), ("private_note", "user", 7, False)]
messages_of_one = st.lists(st.tuples(st.sampled_from(AUTHORS), st.integers(0, 40), st.booleans()),
                           min_size=3, max_size=12)
workspaces = st.lists(messages_of_one, min_size=40, max_size=60)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _workspace(drawn: list) -> dict:
    """The drawn messages as Drift shapes: a message's time is BASE + conversation + its offset in
    whole seconds (small offsets, so messages at the same instant happen often); a drawn flag
    deletes an agent's chat message with an `edit` message right after it."""
    conversations, messages = [], {}
    next_id = 1
    for index, drawn_messages in enumerate(drawn):
        conversation_id = 1000 + index
        start = BASE + timedelta(hours=index)
        conversations.append({"id": conversation_id, "status": "open", "contactId": 900, "inboxId": 3,
                              "createdAt": _ms(start), "updatedAt": _ms(start + timedelta(hours=1))})
        rows = []
        for (kind, author_type, author_id, bot), offset, delete in drawn_messages:
            at = start + timedelta(seconds=offset)
            rows.append({"id": next_id, "createdAt": _ms(at), "type": kind,
                         "author": {"type": author_type, "id": author_id, "bot": bot},
                         "editedMessageId": None, "editType": None})
            next_id += 1
            if delete and kind == "chat" and author_type == "user" and not bot:
                rows.append({"id": next_id, "createdAt": _ms(at + timedelta(seconds=1)), "type": "edit",
                             "author": {"type": "user", "id": author_id, "bot": False},
                             "editedMessageId": next_id - 1, "editType": "delete"})
                next_id += 1
        messages[conversation_id] = rows
    return {"conversations": conversations, "messages": messages, "status_events": [],
            "users": [{"id": 7, "name": "Ann"}, {"id": 8, "name": "Bo"}, {"id": 99, "name": "Bot", "bot": True}]}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _check(tmp_path_factory, drawn: list) -> dict:
    data = _workspace(drawn)
    home = tmp_path_factory.mktemp("metric-property")
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        schema.create_raw_schema(conn)
        load_raw(conn, {ORG: data}, FIRST_SYNC)
    assert_all_passed(dbt(home, home / "target", "run", "--select", "+fct_conversations"))
    columns = ("conversation_id", *FIRST_RESPONSE_COLUMNS, *CALENDAR_REPLY_COLUMNS)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        built = {row[0]: dict(zip(columns, row)) for row in conn.execute(
            f"SELECT {', '.join(columns)} FROM marts.fct_conversations").fetchall()}
    expected = reference_fct_conversations(data["conversations"], data["messages"], [])
    expected_replies = reference_reply_breadth(data["messages"], expected)
    assert set(built) == set(expected)
    mismatches = [(cid, column, built[cid][column], reference[column])
                  for cid in expected
                  for reference, names in ((expected[cid], FIRST_RESPONSE_COLUMNS),
                                           (expected_replies[cid], CALENDAR_REPLY_COLUMNS))
                  for column in names if not _same(built[cid][column], reference[column])]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
    return {"conversations": len(built), "replies": sum(r["agent_reply_count"] for r in built.values()),
            "switches": sum(r["agent_switch_count"] for r in built.values()),
            "responded": sum(r["first_response_seconds"] is not None for r in built.values())}


def test_first_response_and_reply_times_equal_the_reference_on_generated_conversations(tmp_path_factory):
    @hypothesis_settings(max_examples=3, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(workspaces)
    def check(drawn):
        seen.append(_check(tmp_path_factory, drawn))

    seen: list[dict] = []
    check()
    # Not vacuous: the examples hold conversations answered, with several replies and agents.
    assert sum(s["responded"] for s in seen) >= 20 and sum(s["switches"] for s in seen) >= 5, seen
    assert sum(s["replies"] for s in seen) >= 40, seen
