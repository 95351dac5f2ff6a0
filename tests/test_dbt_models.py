"""The dbt project against a small hand-made warehouse that exercises the metric edge cases.

One `dbt build` (models, data tests, unit tests) on a temp warehouse; the marts are compared to
values computed by hand and to tests/reference_metrics.py. A copy of that warehouse then takes
a batch of raw changes (new messages, a deleted reply, erasures, a reopen, a renamed agent, a
moved conversation) and proves an incremental build equals a `--full-refresh` build.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from drift_pipeline.warehouse.schema import create_raw_schema
try:
    from reference_metrics import (
        reference_reply_breadth,
        reference_agent_daily,
        reference_business_seconds,
        reference_daily_metrics,
        reference_fct_conversations,
        to_utc_naive,
    )
except ImportError:  # tests/ imported as a package
    from tests.reference_metrics import (
        reference_reply_breadth,
        reference_agent_daily,
        reference_business_seconds,
        reference_daily_metrics,
        reference_fct_conversations,
        to_utc_naive,
    )

DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
ORG, OTHER_ORG = 1, 2
FIRST_SYNC = datetime(2026, 11, 3, 0, 0, 0)
SECOND_SYNC = datetime(2026, 11, 4, 0, 0, 0)
BOT = 50

D1, D2, D3, D4 = date(2026, 10, 29), date(2026, 10, 30), date(2026, 11, 2), date(2026, 11, 3)


# ---------------------------------------------------------------- dataset (Drift API shapes)

def ms(text: str) -> int:
    """'2026-10-29 12:00:00.250' (UTC) -> Drift epoch milliseconds."""
    value = datetime.fromisoformat(text)
    return round((value - datetime(1970, 1, 1)).total_seconds() * 1000)


def conversation(conversation_id, status, created, updated, contact_id=None, playbook=None):
    return {"id": conversation_id, "status": status, "contactId": contact_id or 500 + conversation_id,
            "inboxId": 3, "createdAt": ms(created), "updatedAt": ms(updated), "relatedPlaybookId": playbook}


def message(message_id, at, kind, author_type, author_id, bot=False, edited=None, edit_type=None, **extra):
    return {"id": message_id, "createdAt": ms(at), "type": kind,
            "author": {"type": author_type, "id": author_id, "bot": bot},
            "editedMessageId": edited, "editType": edit_type, **extra}


def contact_says(message_id, at, contact_id=900):
    return message(message_id, at, "chat", "contact", contact_id)


def agent_says(message_id, at, user_id):
    return message(message_id, at, "chat", "user", user_id)


def bot_says(message_id, at, **extra):
    return message(message_id, at, "chat", "user", BOT, bot=True, **extra)


def event(conversation_id, status, at):
    return (conversation_id, status, datetime.fromisoformat(at))


def base_dataset() -> dict:
    """org_id -> {conversations, messages, status_events, users}."""
    org1_conversations = [
        conversation(101, "closed", "2026-10-29 11:59:00", "2026-10-29 12:30:00", playbook=501),
        conversation(102, "open", "2026-10-29 13:59:50", "2026-10-29 14:05:00", playbook=501),
        conversation(103, "closed", "2026-10-29 15:00:00", "2026-10-29 18:00:00", playbook=501),
        conversation(104, "closed", "2026-10-29 15:59:00", "2026-10-29 16:30:00", playbook=502),
        conversation(105, "closed", "2026-10-29 20:00:00", "2026-10-29 21:00:00"),
        conversation(106, "closed", "2026-10-30 19:59:00", "2026-11-02 16:00:00", playbook=501),
        conversation(107, "open", "2026-10-30 21:00:00", "2026-10-30 21:10:00", playbook=599),
        conversation(108, "closed", "2026-11-02 10:00:00", "2026-11-02 10:05:00", playbook=502),
        conversation(109, "closed", "2026-11-02 12:59:59.500", "2026-11-02 16:00:00", playbook=502),
    ]
    org1_messages = {
        # private note and a replace edit ignored; fractional first response
        101: [contact_says(1001, "2026-10-29 12:00:00"),
              message(1002, "2026-10-29 12:00:30", "private_note", "user", 7),
              agent_says(1003, "2026-10-29 12:01:30.250", 7),
              message(1004, "2026-10-29 12:02:00", "edit", "contact", 900, edited=1001, edit_type="replace"),
              contact_says(1005, "2026-10-29 12:03:00"),
              # same instant as the contact's, higher id: after it, so a reply in 0 s
              agent_says(1006, "2026-10-29 12:03:00", 8)],
        # the first agent reply (user 8) was deleted: user 7 answered first
        102: [contact_says(2001, "2026-10-29 14:00:00"),
              agent_says(2002, "2026-10-29 14:00:10", 8),
              agent_says(2003, "2026-10-29 14:02:00", 7),
              message(2004, "2026-10-29 14:05:00", "edit", "user", 8, edited=2002, edit_type="delete")],
        # bot first, then handed off to user 9; bot replies are not a response. Reopened at
        # 17:00: the contact writes again, user 7 replies, user 9 takes it back (two switches)
        103: [bot_says(3001, "2026-10-29 15:00:00"),
              contact_says(3002, "2026-10-29 15:00:05"),
              bot_says(3003, "2026-10-29 15:00:06"),
              agent_says(3004, "2026-10-29 15:03:05", 9),
              contact_says(3005, "2026-10-29 17:05:00"),
              agent_says(3006, "2026-10-29 17:06:00", 7),
              agent_says(3007, "2026-10-29 17:06:30", 9)],
        # agent opener before the bot and the contact: no response, not handed off
        104: [agent_says(4001, "2026-10-29 16:00:00", 7),
              bot_says(4002, "2026-10-29 16:01:00"),
              contact_says(4003, "2026-10-29 16:02:00")],
        # bot only (its preMessages are not messages)
        105: [bot_says(5001, "2026-10-29 20:00:00", attributes={"preMessages": [{"body": "Hi!"}]}),
              contact_says(5002, "2026-10-29 20:00:30")],
        # Friday 16:00 EDT -> Monday 10:00 EST: across a weekend and the DST end
        106: [contact_says(6001, "2026-10-30 20:00:00"),
              agent_says(6002, "2026-11-02 15:00:00", 8)],
        # no agent: only a suggestion and a bot prompt besides the contact
        107: [contact_says(7001, "2026-10-30 21:00:00"),
              message(7002, "2026-10-30 21:01:00", "suggestion", "user", 9),
              message(7003, "2026-10-30 21:02:00", "private_prompt", "user", BOT, bot=True)],
        # 108 has no messages at all
        109: [contact_says(9001, "2026-11-02 13:00:00"),
              agent_says(9002, "2026-11-02 15:30:00", 8)],
    }
    org1_events = [
        event(101, "open", "2026-10-29 11:59:00"), event(101, "closed", "2026-10-29 12:30:00"),
        event(103, "open", "2026-10-29 15:00:00"), event(103, "closed", "2026-10-29 16:00:00"),
        event(103, "open", "2026-10-29 17:00:00"), event(103, "closed", "2026-10-29 18:00:00"),
        event(105, "closed", "2026-10-29 20:30:00"), event(105, "closed", "2026-10-29 21:00:00"),
        event(106, "closed", "2026-11-02 16:00:00"),
        event(109, "closed", "2026-11-02 16:00:00"),
    ]
    org1_users = [{"id": 7, "name": "Ada"}, {"id": 8, "name": "Grace"}, {"id": 9, "name": "Linus"},
                  {"id": BOT, "name": "Driftbot", "bot": True}]
    # A second workspace reusing conversation, message and user ids.
    org2 = {
        "conversations": [conversation(101, "open", "2026-10-29 11:00:00", "2026-10-29 11:10:00", playbook=501)],
        "messages": {101: [contact_says(1001, "2026-10-29 11:00:00"), agent_says(1002, "2026-10-29 11:00:45", 7)]},
        "status_events": [],
        "users": [{"id": 7, "name": "Zed"}],
    }
    return {
        ORG: {"conversations": org1_conversations, "messages": org1_messages,
              "status_events": org1_events, "users": org1_users},
        OTHER_ORG: org2,
    }


def widget(org_id, conversation_id, at, utm=(None, None, None), page=None, kind="conversation:start"):
    """A raw.widget_events row as the apply step writes it (UTM as source, medium, campaign)."""
    source, medium, campaign = utm
    return {"org_id": org_id, "event_id": f"{org_id}-{conversation_id}-{at}-{kind}", "event_type": kind,
            "conversation_id": conversation_id, "occurred_at": datetime.fromisoformat(at),
            "utm_source": source, "utm_medium": medium, "utm_campaign": campaign, "page_path": page}


GOOGLE, NEWSLETTER = ("google", "cpc", "winter"), ("newsletter", "email", "nov")
WIDGET_EVENTS = [
    widget(ORG, 101, "2026-10-29 11:59:00", GOOGLE, "/pricing"),
    widget(ORG, 101, "2026-10-29 12:00:00", ("bing", "cpc", "spring"), "/blog", kind="message:sent"),  # later: ignored
    widget(ORG, 103, "2026-10-29 15:00:00", NEWSLETTER, "/features"),
    widget(ORG, 104, "2026-10-29 15:59:00", page="/"),                      # tracked, no UTM: '(none)'
    widget(ORG, 106, "2026-10-30 19:59:00", GOOGLE, "/pricing"),
    widget(ORG, 999, "2026-10-30 10:00:00", GOOGLE, "/pricing"),            # conversation never synced
    widget(OTHER_ORG, 101, "2026-10-29 11:00:00", ("linkedin", "social", "q4"), "/demo"),
]


def load_widget_events(conn, events: list[dict], synced_at: datetime) -> None:
    for row in events:
        conn.execute("insert or replace into raw.widget_events (org_id, event_id, event_type, conversation_id, "
                     "occurred_at, utm_source, utm_medium, utm_campaign, page_path, synced_at) "
                     "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [row["org_id"], row["event_id"], row["event_type"], row["conversation_id"],
                      row["occurred_at"], row["utm_source"], row["utm_medium"], row["utm_campaign"],
                      row["page_path"], synced_at])


def meeting(org_id, slug, status, conversation_id, scheduled, slot, updated, source="chat"):
    """A raw.meetings row as the meetings stream writes it (times UTC)."""
    return {"org_id": org_id, "slug": slug, "status": status, "meeting_source": source, "meeting_type": "demo",
            "agent_user_id": 7, "conversation_id": conversation_id,
            "scheduled_at": datetime.fromisoformat(scheduled), "slot_start_at": datetime.fromisoformat(slot),
            "updated_at": datetime.fromisoformat(updated)}


def meeting_change(org_id, slug, updated, status, slot):
    """A raw.meeting_changes row: one observed state of a meeting."""
    return {"org_id": org_id, "slug": slug, "updated_at": datetime.fromisoformat(updated), "status": status,
            "slot_start_at": datetime.fromisoformat(slot), "source": "webhook"}


MEETINGS = [
    # 101: booked, cancelled, then booked again (a new meeting): booked through the second one
    meeting(ORG, "m-101a", "CANCELED", 101, "2026-10-29 12:05:00", "2026-11-05 15:00:00", "2026-10-29 13:00:00"),
    meeting(ORG, "m-101b", "ACTIVE", 101, "2026-10-29 13:05:00", "2026-11-06 15:00:00", "2026-10-29 13:05:00"),
    # 103: Drift's row still says ACTIVE, a later observed change cancelled it (lower case)
    meeting(ORG, "m-103", "ACTIVE", 103, "2026-10-29 15:10:00", "2026-11-03 16:00:00", "2026-10-29 16:00:00"),
    # 104: an older cancellation in the history, the current row (later) is active again
    meeting(ORG, "m-104", "ACTIVE", 104, "2026-10-29 16:05:00", "2026-11-04 16:05:30.500", "2026-10-29 16:20:00"),
    # 107: its playbook was never listed
    meeting(ORG, "m-107", "ACTIVE", 107, "2026-10-30 21:03:00", "2026-11-02 17:00:00", "2026-10-30 21:03:00"),
    # booked outside any conversation (an email link), and in a conversation never synced
    meeting(ORG, "m-email", "ACTIVE", None, "2026-10-29 10:00:00", "2026-10-30 10:00:00", "2026-10-29 10:00:00",
            source="EMAIL_DROP"),
    meeting(ORG, "m-999", "ACTIVE", 999, "2026-10-31 09:00:00", "2026-11-01 09:00:00", "2026-10-31 09:00:00"),
    meeting(OTHER_ORG, "m-101a", "ACTIVE", 101, "2026-10-29 11:01:00", "2026-10-30 11:01:00", "2026-10-29 11:01:00"),
]
MEETING_CHANGES = [
    meeting_change(ORG, "m-101a", "2026-10-29 12:05:00", "ACTIVE", "2026-11-05 15:00:00"),
    meeting_change(ORG, "m-101a", "2026-10-29 13:00:00", "CANCELED", "2026-11-05 15:00:00"),
    meeting_change(ORG, "m-103", "2026-10-29 17:00:00", "cancelled", "2026-11-03 16:00:00"),
    meeting_change(ORG, "m-104", "2026-10-29 16:10:00", "CANCELLED", "2026-11-04 16:05:30.500"),
]
# 599 (conversation 107's) was never listed; org 2 reuses id 501 for its own playbook.
PLAYBOOKS = [(ORG, 501, "Pricing page"), (ORG, 502, "Demo request"), (OTHER_ORG, 501, "Zed's playbook")]


def load_meetings(conn, meetings: list[dict], changes: list[dict], synced_at: datetime) -> None:
    for row in meetings:
        conn.execute("insert or replace into raw.meetings (org_id, slug, status, meeting_source, meeting_type, "
                     "agent_user_id, conversation_id, scheduled_at, slot_start_at, updated_at, synced_at) "
                     "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [row["org_id"], row["slug"], row["status"], row["meeting_source"], row["meeting_type"],
                      row["agent_user_id"], row["conversation_id"], row["scheduled_at"], row["slot_start_at"],
                      row["updated_at"], synced_at])
    for row in changes:
        conn.execute("insert or replace into raw.meeting_changes (org_id, slug, updated_at, status, slot_start_at, "
                     "source, recorded_at) values (?, ?, ?, ?, ?, ?, ?)",
                     [row["org_id"], row["slug"], row["updated_at"], row["status"], row["slot_start_at"],
                      row["source"], synced_at])


def load_playbooks(conn, playbooks: list[tuple], synced_at: datetime) -> None:
    """Every listing re-writes every listed playbook (synced_at and last_listed_at move)."""
    for org_id, playbook_id, name in playbooks:
        conn.execute("insert or replace into raw.playbooks (org_id, playbook_id, name, report_type, first_seen_at, "
                     "last_listed_at, currently_listed, synced_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
                     [org_id, playbook_id, name, "BOOK_MORE_MEETINGS", FIRST_SYNC, synced_at, True, synced_at])


# ---------------------------------------------------------------- raw rows and dbt

def load_raw(conn, dataset: dict, synced_at: datetime, only: set | None = None) -> None:
    """Upsert the dataset into raw.* (rows of `only` = {(org, conversation_id)} when given)."""
    for org_id, data in dataset.items():
        for c in data["conversations"]:
            if only is not None and (org_id, c["id"]) not in only:
                continue
            conn.execute("insert or replace into raw.conversations (org_id, conversation_id, status, contact_id, "
                         "inbox_id, created_at, updated_at, related_playbook_id, synced_at) "
                         "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [org_id, c["id"], c["status"], c["contactId"], c["inboxId"],
                          to_utc_naive(c["createdAt"]), to_utc_naive(c["updatedAt"]),
                          c.get("relatedPlaybookId"), synced_at])
            for m in data["messages"].get(c["id"], []):
                conn.execute("insert or replace into raw.messages (org_id, conversation_id, message_id, created_at, "
                             "message_type, author_type, author_id, is_bot, body, edited_message_id, edit_type, "
                             "synced_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [org_id, c["id"], m["id"], to_utc_naive(m["createdAt"]), m["type"],
                              m["author"]["type"], m["author"]["id"], m["author"]["bot"], "<p>hi</p>",
                              m["editedMessageId"], m["editType"], synced_at])
        for conversation_id, status, changed_at in data["status_events"]:
            if only is not None and (org_id, conversation_id) not in only:
                continue
            conn.execute("insert or replace into raw.status_events values (?, ?, ?, ?, ?, ?)",
                         [org_id, conversation_id, status, changed_at, "webhook", synced_at])
        if only is None:
            for u in data["users"]:
                conn.execute("insert or replace into raw.users (org_id, user_id, name, is_bot, synced_at) "
                             "values (?, ?, ?, ?, ?)", [org_id, u["id"], u["name"], u.get("bot", False), synced_at])


def raw_rows(dataset: dict, synced_at: datetime) -> dict[str, list[dict]]:
    """The rows load_raw writes, as dicts per raw table (for loaders other than DuckDB's SQL)."""
    rows: dict[str, list[dict]] = {"conversations": [], "messages": [], "status_events": [], "users": []}
    for org_id, data in dataset.items():
        for c in data["conversations"]:
            rows["conversations"].append({
                "org_id": org_id, "conversation_id": c["id"], "status": c["status"], "contact_id": c["contactId"],
                "inbox_id": c["inboxId"], "created_at": to_utc_naive(c["createdAt"]),
                "updated_at": to_utc_naive(c["updatedAt"]), "related_playbook_id": c.get("relatedPlaybookId"),
                "synced_at": synced_at})
            for m in data["messages"].get(c["id"], []):
                rows["messages"].append({
                    "org_id": org_id, "conversation_id": c["id"], "message_id": m["id"],
                    "created_at": to_utc_naive(m["createdAt"]), "message_type": m["type"],
                    "author_type": m["author"]["type"], "author_id": m["author"]["id"], "is_bot": m["author"]["bot"],
                    "body": "<p>hi</p>", "edited_message_id": m["editedMessageId"], "edit_type": m["editType"],
                    "synced_at": synced_at})
        for conversation_id, status, changed_at in data["status_events"]:
            rows["status_events"].append({"org_id": org_id, "conversation_id": conversation_id, "status": status,
                                          "changed_at": changed_at, "source": "webhook", "recorded_at": synced_at})
        for u in data["users"]:
            rows["users"].append({"org_id": org_id, "user_id": u["id"], "name": u["name"],
                                  "is_bot": u.get("bot", False), "synced_at": synced_at})
    return rows


class DbtRun:
    """One dbt invocation: its exit code, output and run_results.json entries."""

    def __init__(self, completed: subprocess.CompletedProcess, results: list[dict]):
        self.returncode = completed.returncode
        self.output = completed.stdout + completed.stderr
        self.results = results


def dbt(home: Path, target: Path, *args: str) -> DbtRun:
    """Run dbt in a subprocess (dbt-duckdb keeps its database open in-process) on `home`."""
    env = {**os.environ, "DRIFT_PIPELINE_HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args,
         "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
         "--target-path", str(target), "--log-path", str(target / "logs")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    run_results = target / "run_results.json"
    results = json.loads(run_results.read_text())["results"] if run_results.exists() else []
    return DbtRun(completed, results)


def assert_all_passed(run: DbtRun) -> None:
    failures = [f"{r['unique_id']}: {r['status']} {r.get('message')}" for r in run.results
                if r["status"] not in ("success", "pass")]
    assert run.returncode == 0 and run.results and not failures, "\n".join(failures) or run.output[-3000:]


def copy_of_built(built: dict) -> Path:
    """A home holding a copy of the first build's warehouse (which passed every test), for a
    test to change and build again without touching the shared one.

    Every copy is made at one path, emptied first: dbt's saved parse (in the shared target
    folder) is valid only for the profile it was made with, which holds the home's path, so a
    copy at a new path made each test's first dbt command parse the whole project again."""
    assert_all_passed(built["result"])
    home = built["home"].parent / f"{built['home'].name}-copy"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir()
    shutil.copy(built["home"] / "warehouse.duckdb", home / "warehouse.duckdb")
    return home


def fetch(conn, table: str, key: tuple[str, ...], org_id: int) -> dict:
    cursor = conn.execute(f"select * from {table} where org_id = ?", [org_id])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in rows}


def assert_rows_match(actual: dict, expected: dict, columns) -> None:
    assert set(actual) == set(expected)
    for key, expected_row in expected.items():
        for column in columns:
            got, want = actual[key][column], expected_row[column]
            if isinstance(want, float) or isinstance(got, float):
                assert got is not None and want is not None and math.isclose(got, want, abs_tol=1e-6), (key, column, got, want)
            else:
                assert got == want, (key, column, got, want)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A warehouse with the dataset and one successful `dbt build`."""
    home = tmp_path_factory.mktemp("dbt_home")
    target = home / "target"
    dataset = base_dataset()
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        create_raw_schema(conn)
        load_raw(conn, dataset, FIRST_SYNC)
        load_widget_events(conn, WIDGET_EVENTS, FIRST_SYNC)
        load_meetings(conn, MEETINGS, MEETING_CHANGES, FIRST_SYNC)
        load_playbooks(conn, PLAYBOOKS, FIRST_SYNC)
    result = dbt(home, target, "build")
    return {"home": home, "target": target, "dataset": dataset, "result": result}


@pytest.fixture(scope="module")
def marts(built):
    with duckdb.connect(str(built["home"] / "warehouse.duckdb"), read_only=True) as conn:
        return {
            org: {
                "fct": fetch(conn, "marts.fct_conversations", ("conversation_id",), org),
                "daily": fetch(conn, "marts.agg_daily_metrics", ("metric_date",), org),
                "agent": fetch(conn, "marts.agg_agent_daily", ("metric_date", "user_id"), org),
            }
            for org in (ORG, OTHER_ORG)
        }


def data_messages(dataset: dict, org_id: int) -> dict:
    return dataset[org_id]["messages"]


def reference(dataset: dict, org_id: int):
    data = dataset[org_id]
    fct = reference_fct_conversations(data["conversations"], data["messages"], data["status_events"])
    return fct, reference_daily_metrics(fct), reference_agent_daily(fct, data["users"])


# ---------------------------------------------------------------- tests

def test_dbt_build_passes_every_model_data_test_and_unit_test(built):
    assert_all_passed(built["result"])
    kinds = {r["unique_id"].split(".")[0] for r in built["result"].results}
    assert {"model", "test", "unit_test"} <= kinds


def test_marts_live_in_schema_marts_with_documented_types(built):
    with duckdb.connect(str(built["home"] / "warehouse.duckdb"), read_only=True) as conn:
        tables = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'").fetchall()}
        types = dict(conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'fct_conversations'").fetchall())
    assert tables == {"fct_conversations", "agg_daily_metrics", "agg_agent_daily", "agg_attribution_daily",
                      "fct_meetings", "agg_playbook_daily",
                      "agg_daily_backlog", "fct_sla_events"}
    assert types["conversation_id"] == "BIGINT" and types["first_response_seconds"] == "DOUBLE"
    assert types["created_at"] == "TIMESTAMP" and types["handed_off"] == "BOOLEAN"
    assert types["first_response_business_seconds"] == "DOUBLE"
    assert types["playbook_id"] == "BIGINT" and types["playbook_name"] == "VARCHAR"
    assert types["meeting_booked"] == "BOOLEAN" and types["first_meeting_scheduled_at"] == "TIMESTAMP"


def test_every_model_documents_exactly_the_columns_it_has(built):
    """Docs and tables agree: every column documented (the intermediate models' `_` bookkeeping
    columns aside), nothing documented that is not built. An incremental model whose table lacks
    a documented column rebuilds every row (drift_documented_columns_missing), so a stray
    documented column would rebuild every run."""
    assert_all_passed(built["result"])
    manifest = json.loads((built["target"] / "manifest.json").read_text())
    with duckdb.connect(str(built["home"] / "warehouse.duckdb"), read_only=True) as conn:
        built_columns = {}
        for schema, table, column in conn.execute(
                "select table_schema, table_name, column_name from information_schema.columns").fetchall():
            built_columns.setdefault((schema, table), set()).add(column)
    models = [node for node in manifest["nodes"].values() if node["resource_type"] == "model"]
    not_built = {node["name"]: set(node["columns"]) - built_columns[(node["schema"], node["alias"])]
                 for node in models}
    undocumented = {node["name"]: {c for c in built_columns[(node["schema"], node["alias"])] - set(node["columns"])
                                   if not (c.startswith("_") and node["name"].startswith("int_"))}
                    for node in models}
    assert {k: v for k, v in not_built.items() if v} == {} and {k: v for k, v in undocumented.items() if v} == {}


# (first_contact, first_agent, responder, first_response_s, business_s, has_bot, handed_off,
#  first_closed, open_to_close_s, reopens, handle_s, messages, contact, agent, bot)
HAND_COMPUTED_FCT = {
    101: ("2026-10-29 12:00:00", "2026-10-29 12:01:30.250", 7, 90.25, 0.0, False, False,
          "2026-10-29 12:30:00", 1860.0, 0, 1709.75, 4, 2, 2, 0),
    102: ("2026-10-29 14:00:00", "2026-10-29 14:02:00", 7, 120.0, 120.0, False, False,
          None, None, 0, None, 2, 1, 1, 0),
    103: ("2026-10-29 15:00:05", "2026-10-29 15:03:05", 9, 180.0, 180.0, True, True,
          "2026-10-29 16:00:00", 3600.0, 1, 3415.0, 7, 2, 3, 2),
    104: ("2026-10-29 16:02:00", None, None, None, None, True, False,
          "2026-10-29 16:30:00", 1860.0, 0, None, 3, 1, 1, 1),
    105: ("2026-10-29 20:00:30", None, None, None, None, True, False,
          "2026-10-29 20:30:00", 1800.0, 0, None, 2, 1, 0, 1),
    106: ("2026-10-30 20:00:00", "2026-11-02 15:00:00", 8, 241200.0, 7200.0, False, False,
          "2026-11-02 16:00:00", 244860.0, 0, 3600.0, 2, 1, 1, 0),
    107: ("2026-10-30 21:00:00", None, None, None, None, False, False,
          None, None, 0, None, 1, 1, 0, 0),
    108: (None, None, None, None, None, False, False,
          "2026-11-02 10:05:00", 300.0, 0, None, 0, 0, 0, 0),
    109: ("2026-11-02 13:00:00", "2026-11-02 15:30:00", 8, 9000.0, 5400.0, False, False,
          "2026-11-02 16:00:00", 10800.5, 0, 1800.0, 2, 1, 1, 0),
}
FCT_HAND_COLUMNS = ("first_contact_message_at", "first_agent_message_at", "first_responder_user_id",
                    "first_response_seconds", "first_response_business_seconds", "has_bot", "handed_off",
                    "first_closed_at", "open_to_close_seconds", "reopen_count", "handle_time_seconds",
                    "message_count", "contact_message_count", "agent_message_count", "bot_message_count")


def _hand_fct() -> dict:
    rows = {}
    for conversation_id, values in HAND_COMPUTED_FCT.items():
        row = dict(zip(FCT_HAND_COLUMNS, values))
        for column in ("first_contact_message_at", "first_agent_message_at", "first_closed_at"):
            row[column] = datetime.fromisoformat(row[column]) if row[column] else None
        rows[conversation_id] = row
    return rows


def test_fct_conversations_matches_hand_computed_values(marts):
    assert_rows_match(marts[ORG]["fct"], _hand_fct(), FCT_HAND_COLUMNS)


# Reply breadth by hand (contract: "Meetings, playbooks, accounts, reply breadth"). Business
# hours are New York 09:00-17:00 on weekdays.
# (agent_reply_count, reply_time_p50_seconds, reply_time_max_seconds, contact_wait_seconds,
#  reply_time_p50_business_seconds, reply_time_max_business_seconds, unique_agent_count,
#  agent_switch_count, touch_class)
HAND_COMPUTED_REPLIES = {
    # 90.25 s (the private note and the replace edit change nothing), then 0 s: user 8 at the
    # contact's instant with a higher id. 08:00-08:03 EDT: before opening. 7 -> 8: one switch.
    101: (2, 45.125, 90.25, 90.25, 0.0, 0.0, 2, 1, "two"),
    # user 8's deleted reply is gone: user 7's at 120 s is the only one (10:00 EDT: in hours)
    102: (1, 120.0, 120.0, 120.0, 120.0, 120.0, 1, 0, None),
    # a bot between the contact and user 9 does not reply: 180 s; after the reopen 60 s by
    # user 7, then user 9 again: agents 9, 7, 9 are two switches; three agent messages: multi
    103: (2, 120.0, 180.0, 240.0, 120.0, 180.0, 2, 2, "multi"),
    # the agent's opener came before the contact, who then waits unanswered: no reply
    104: (0, None, None, 0.0, None, None, 1, 0, "one"),
    # only a bot answered: no reply, no agent, closed: none
    105: (0, None, None, 0.0, None, None, 0, 0, "none"),
    # Fri 16:00 EDT -> Mon 10:00 EST: 2 business hours across the weekend and the DST end
    106: (1, 241200.0, 241200.0, 241200.0, 7200.0, 7200.0, 1, 0, "one"),
    107: (0, None, None, 0.0, None, None, 0, 0, None),
    # no messages at all, closed: none
    108: (0, None, None, 0.0, None, None, 0, 0, "none"),
    # 09:00 -> 11:30 EST, 1.5 h in hours
    109: (1, 9000.0, 9000.0, 9000.0, 5400.0, 5400.0, 1, 0, "one"),
}
REPLY_COLUMNS = ("agent_reply_count", "reply_time_p50_seconds", "reply_time_max_seconds", "contact_wait_seconds",
                 "reply_time_p50_business_seconds", "reply_time_max_business_seconds", "unique_agent_count",
                 "agent_switch_count", "touch_class")


def test_fct_reply_breadth_matches_hand_computed_values(marts):
    assert_rows_match(marts[ORG]["fct"], {cid: dict(zip(REPLY_COLUMNS, v)) for cid, v in HAND_COMPUTED_REPLIES.items()},
                      REPLY_COLUMNS)
    # org 2 reuses conversation 101: 45 s at 07:00 EDT, outside hours; open, so no touch class
    assert_rows_match(marts[OTHER_ORG]["fct"], {101: dict(zip(REPLY_COLUMNS, (1, 45.0, 45.0, 45.0, 0.0, 0.0, 1, 0, None)))},
                      REPLY_COLUMNS)


DAILY_REPLY_COLUMNS = ("reply_time_p50_seconds", "reply_time_p90_seconds", "one_touch_conversations",
                       "two_touch_conversations", "multi_touch_conversations")


def test_daily_reply_times_and_touch_mix_match_hand_computed_values(marts):
    expected = {
        # replies 0, 60, 90.25, 120, 180 (101, 103, 102): p90 at 3.6 = 120 + 0.6 * 60;
        # 101 two, 103 multi, 104 one, 105 none, 102 open
        D1: (90.25, 156.0, 1, 1, 1),
        D2: (241200.0, 241200.0, 1, 0, 0),     # 106; 107 is open
        D3: (9000.0, 9000.0, 1, 0, 0),         # 109; 108 is none
    }
    assert_rows_match(marts[ORG]["daily"], {d: dict(zip(DAILY_REPLY_COLUMNS, v)) for d, v in expected.items()},
                      DAILY_REPLY_COLUMNS)
    assert_rows_match(marts[OTHER_ORG]["daily"], {D1: dict(zip(DAILY_REPLY_COLUMNS, (45.0, 45.0, 0, 0, 0)))},
                      DAILY_REPLY_COLUMNS)
    expected_agents = {
        # user 7 answered 101 and 102 first: their replies 0, 90.25, 120; p90 at 1.8
        (D1, 7): (90.25, 114.05, 0, 1, 0),
        (D1, 9): (120.0, 168.0, 0, 0, 1),      # 103: 180 and 60 (user 7's reply counts for 9)
        (D2, 8): (241200.0, 241200.0, 1, 0, 0),
        (D3, 8): (9000.0, 9000.0, 1, 0, 0),
    }
    assert_rows_match(marts[ORG]["agent"], {k: dict(zip(DAILY_REPLY_COLUMNS, v)) for k, v in expected_agents.items()},
                      DAILY_REPLY_COLUMNS)


BACKLOG_COLUMNS = ("open_conversations", "open_age_p50_seconds", "open_age_p90_seconds", "pending_conversations")


def test_daily_backlog_matches_hand_computed_values(built):
    """Open conversations at each UTC day's end (inbox 3), to the org's newest time (11-02 16:00).
    102 and 107 never close; 106 is open from 10-30 19:59 to its close on 11-02 16:00; 103's
    close, reopen and close all fall inside 10-29; the rest close the day they start."""
    assert_all_passed(built["result"])
    expected = {
        # ages (day end - created_at): 102 from 13:59:50 (36,010 s at the first end), 106 from
        # 19:59 (14,460), 107 from 21:00 (10,800), each a day older at each end
        (ORG, D1, 3): (1, 36010.0, 36010.0, 0),
        (ORG, D2, 3): (3, 14460.0, 100820.0, 0),            # 10800, 14460, 122410
        (ORG, date(2026, 10, 31), 3): (3, 100860.0, 187220.0, 0),
        (ORG, date(2026, 11, 1), 3): (3, 187260.0, 273620.0, 0),
        (ORG, D3, 3): (2, 325805.0, 370449.0, 0),           # 270000, 381610: 106 closed at 16:00
        (OTHER_ORG, D1, 3): (1, 46800.0, 46800.0, 0),
    }
    assert_rows_match(_snapshot(built["home"])["backlog"],
                      {k: dict(zip(BACKLOG_COLUMNS, v)) for k, v in expected.items()}, BACKLOG_COLUMNS)


def test_sla_events_on_the_dataset_match_hand_computed_breaches(built):
    """A calendar policy (first reply 120 s, next reply 60 s) on every inbox, measured at
    2026-10-30 21:01. A reply exactly at the target meets it; a close ends an unanswered wait."""
    home = copy_of_built(built)
    policies = json.dumps({"sla_as_of": "2026-10-30 21:01:00", "sla_policies": [
        {"name": "Standard", "first_reply_seconds": 120, "next_reply_seconds": 60}]})
    assert_all_passed(dbt(home, built["target"], "build", "--select", "fct_sla_events",
                          "--exclude-resource-type", "unit_test", "--vars", policies))
    sla = _snapshot(home)["sla"]
    got = {(k[1], k[2]): (r["metric"], r["is_breached"], r["is_active"]) for k, r in sla.items() if k[0] == ORG}
    assert got == {
        (101, 1): ("first_reply", False, False),   # 90.25 s
        (101, 2): ("next_reply", False, False),    # 0 s: user 8 at the contact's instant
        (102, 1): ("first_reply", False, False),   # 120 s, exactly the target (the deleted reply is gone)
        (103, 1): ("first_reply", True, False),    # 180 s: the bot did not answer
        (103, 2): ("next_reply", False, False),    # after the reopen, 60 s: exactly the target
        (104, 1): ("first_reply", True, False),    # unanswered, closed at 16:30 (updated_at): 1680 s
        (105, 1): ("first_reply", True, False),    # unanswered, closed at 20:30: 1770 s
        (106, 1): ("first_reply", True, False),
        (107, 1): ("first_reply", False, True),    # waiting since 21:00, 60 s at 21:01
        (109, 1): ("first_reply", True, False),
    }
    elapsed = {(k[1], k[2]): r["elapsed_seconds"] for k, r in sla.items() if k[0] == ORG}
    assert [elapsed[k] for k in ((101, 1), (102, 1), (103, 1), (104, 1), (105, 1), (107, 1))] == \
        [90.25, 120.0, 180.0, 1680.0, 1770.0, 60.0]
    assert sla[(ORG, 104, 1, "Standard")]["sla_ended_at"] == datetime(2026, 10, 29, 16, 30)
    assert sla[(ORG, 107, 1, "Standard")]["sla_breach_at"] == datetime(2026, 10, 30, 21, 2)
    assert sla[(OTHER_ORG, 101, 1, "Standard")]["is_breached"] is False   # 45 s


SLA_POLICIES = [{"name": "Standard", "first_reply_seconds": 120, "next_reply_seconds": 60},
                {"name": "Business", "first_reply_seconds": 3600, "in_business_hours": True}]


def test_sla_events_measure_again_only_changed_conversations_and_waits_like_a_full_refresh(built):
    """fct_sla_events is incremental: after the second sync, measured at a later "now", a run
    measures again the reloaded conversations and the turns still waiting, keeps every ended
    wait of the other conversations as it was, and equals a full refresh at the same "now".
    Then a changed policy makes it measure every row again, like a full refresh."""
    home = copy_of_built(built)
    target = built["target"]
    # 102 (open, not in the second sync) gets a contact message that no one answers
    unanswered = copy.deepcopy(built["dataset"])
    unanswered[ORG]["messages"][102].append(contact_says(2099, "2026-10-30 21:00:30"))
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        load_raw(conn, unanswered, datetime(2026, 11, 3, 12, 0), only={(ORG, 102)})
    first = json.dumps({"sla_as_of": "2026-10-30 21:01:00", "sla_policies": SLA_POLICIES})
    later = json.dumps({"sla_as_of": "2026-11-04 12:00:00", "sla_policies": SLA_POLICIES})
    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--vars", first))
    before = _sla_rows_with_bookkeeping(home)
    assert before[(ORG, 107, 1, "Standard")]["is_active"] is True          # waiting since 21:00
    assert before[(ORG, 102, 2, "Standard")]["elapsed_seconds"] == 30.0     # since 21:00:30

    dataset, reloaded, erased = load_second_sync(home, built["dataset"])
    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--vars", later))
    after = _sla_rows_with_bookkeeping(home)
    incremental = _snapshot(home)["sla"]

    # hand-computed: 107's first reply came at 21:05 (300 s: Standard's 120 s breached; Fri 17:05
    # EDT, after closing: 0 business seconds, Business due Mon 11-02 10:00 EST); 110 is new, answered
    # in 30 s at 09:00 EST.
    expected = {(107, 1, "Standard"): (300.0, True, False, datetime(2026, 10, 30, 21, 2)),
                (107, 1, "Business"): (0.0, False, False, datetime(2026, 11, 2, 15, 0)),
                (110, 1, "Standard"): (30.0, False, False, datetime(2026, 11, 3, 14, 2)),
                (110, 1, "Business"): (30.0, False, False, datetime(2026, 11, 3, 15, 0))}
    got = {key[1:]: (row["elapsed_seconds"], row["is_breached"], row["is_active"], row["sla_breach_at"])
           for key, row in incremental.items() if key[0] == ORG and key[1] in (107, 110) and key[2] == 1}
    assert got == expected
    # 102's next reply is still awaited: 4 days 14:59:30 at the later "now", breached at 21:01:30
    assert (incremental[(ORG, 102, 2, "Standard")]["elapsed_seconds"], incremental[(ORG, 102, 2, "Standard")]["is_breached"],
            incremental[(ORG, 102, 2, "Standard")]["is_active"]) == (399570.0, True, False)
    assert (ORG, 102, 2, "Business") not in incremental                     # Business sets no next reply target
    assert not any(key[:2] in erased for key in incremental)
    # measured again: the reloaded conversations and the waits; kept as they were: every other
    # ended wait (measured at the first "now")
    waiting = {key for key, row in after.items() if row["sla_ended_at"] is None}
    kept = {key for key, row in after.items() if key[:2] not in reloaded and key not in waiting}
    assert waiting and kept
    assert {after[key]["_sla_as_of"] for key in waiting} == {datetime(2026, 11, 4, 12, 0)}
    assert all(after[key] == before[key] for key in kept)

    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh", "--vars", later))
    assert _snapshot(home)["sla"] == incremental

    stricter = json.dumps({"sla_as_of": "2026-11-04 12:00:00", "sla_policies": [
        dict(SLA_POLICIES[0], first_reply_seconds=60), SLA_POLICIES[1]]})
    assert_all_passed(dbt(home, target, "run", "--select", "fct_sla_events", "--vars", stricter))
    changed = _snapshot(home)["sla"]
    assert changed[(ORG, 110, 1, "Standard")]["is_breached"] is False    # 30 s
    assert changed[(ORG, 101, 1, "Standard")]["is_breached"] is True     # 90.25 s, now over 60 s
    assert_all_passed(dbt(home, target, "run", "--select", "fct_sla_events", "--full-refresh", "--vars", stricter))
    assert _snapshot(home)["sla"] == changed


def test_sla_events_built_whole_by_an_older_version_are_rebuilt_by_the_next_run(built):
    """An older version rebuilt fct_sla_events whole every run, without the incremental
    bookkeeping: the next run (nightly or webhook, no --full-refresh) replaces every row, the
    data-test scope's on-run-start hook does not trip on the missing watermark, and the result
    equals a full refresh."""
    home = copy_of_built(built)
    target = built["target"]
    policies = json.dumps({"sla_as_of": "2026-10-30 21:01:00", "sla_policies": SLA_POLICIES})
    assert_all_passed(dbt(home, target, "run", "--select", "fct_sla_events", "--full-refresh", "--vars", policies))
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        conn.execute("create or replace table marts.fct_sla_events as select * exclude "
                     "(_source_synced_at, _sla_version, _sla_as_of) from marts.fct_sla_events")
        conn.execute("update marts.fct_sla_events set elapsed_seconds = -1")       # stale rows
    assert_all_passed(dbt(home, target, "build", "--select", "fct_sla_events", "--exclude-resource-type",
                          "unit_test", "--vars", json.dumps({**json.loads(policies), "drift_tests_scope": "changed"})))
    upgraded = _snapshot(home)["sla"]
    assert upgraded and all(row["elapsed_seconds"] >= 0 for row in upgraded.values())
    assert_all_passed(dbt(home, target, "run", "--select", "fct_sla_events", "--full-refresh", "--vars", policies))
    assert _snapshot(home)["sla"] == upgraded


def _sla_rows_with_bookkeeping(home: Path) -> dict:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        cursor = conn.execute("select * from marts.fct_sla_events")
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, values)) for values in cursor.fetchall()]
    return {(r["org_id"], r["conversation_id"], r["turn_number"], r["sla_policy"]): r for r in rows}


def test_fct_conversations_keeps_workspaces_apart(marts):
    other = marts[OTHER_ORG]["fct"]
    assert set(other) == {101}
    assert other[101]["first_response_seconds"] == 45.0 and other[101]["first_responder_user_id"] == 7
    assert marts[ORG]["fct"][101]["first_response_seconds"] == 90.25


def test_agg_daily_metrics_matches_hand_computed_values(marts):
    columns = ("conversations", "responded_conversations", "first_response_p50_seconds",
               "first_response_p90_seconds", "bot_conversations", "handed_off_conversations",
               "handoff_rate", "closed_conversations", "open_to_close_p50_seconds", "open_to_close_p90_seconds")
    expected = {
        D1: (5, 3, 120.0, 168.0, 3, 1, 1 / 3, 4, 1860.0, 3078.0),
        D2: (2, 1, 241200.0, 241200.0, 0, 0, None, 1, 244860.0, 244860.0),
        D3: (2, 1, 9000.0, 9000.0, 0, 0, None, 2, 5550.25, 9750.45),
    }
    assert_rows_match(marts[ORG]["daily"], {d: dict(zip(columns, v)) for d, v in expected.items()}, columns)
    other = {D1: dict(zip(columns, (1, 1, 45.0, 45.0, 0, 0, None, 0, None, None)))}
    assert_rows_match(marts[OTHER_ORG]["daily"], other, columns)


def test_agg_agent_daily_matches_hand_computed_values(marts):
    columns = ("agent_name", "conversations_first_responded", "first_response_p50_seconds")
    expected = {
        (D1, 7): ("Ada", 2, 105.125), (D1, 9): ("Linus", 1, 180.0),
        (D2, 8): ("Grace", 1, 241200.0), (D3, 8): ("Grace", 1, 9000.0),
    }
    assert_rows_match(marts[ORG]["agent"], {k: dict(zip(columns, v)) for k, v in expected.items()}, columns)
    assert_rows_match(marts[OTHER_ORG]["agent"], {(D1, 7): dict(zip(columns, ("Zed", 1, 45.0)))}, columns)


def _assert_marts_match_reference(marts_of_org: dict, dataset: dict, org_id: int) -> None:
    fct, daily, agent = reference(dataset, org_id)
    fct_columns = [c for c in next(iter(fct.values())) if c != "conversation_id"] if fct else []
    assert_rows_match(marts_of_org["fct"], fct, fct_columns)
    for conversation_id, row in fct.items():
        assert math.isclose(
            marts_of_org["fct"][conversation_id]["first_response_business_seconds"] or 0.0,
            reference_business_seconds(row["first_contact_message_at"], row["first_agent_message_at"]) or 0.0,
            abs_tol=1e-6)
    assert_rows_match(marts_of_org["daily"], daily, [c for c in next(iter(daily.values()), {}) if c != "metric_date"])
    assert_rows_match(marts_of_org["agent"], agent, ["agent_name", "conversations_first_responded",
                                                      "first_response_p50_seconds"])
    replies = reference_reply_breadth(data_messages(dataset, org_id), fct)
    assert_rows_match(marts_of_org["fct"], replies, REPLY_COLUMNS)


def test_marts_match_the_python_reference(built, marts):
    for org_id in (ORG, OTHER_ORG):
        _assert_marts_match_reference(marts[org_id], built["dataset"], org_id)


ATTRIBUTION_COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "landing_page")


def test_fct_attribution_is_the_first_widget_event_per_conversation(marts):
    expected = {101: ("google", "cpc", "winter", "/pricing"), 103: ("newsletter", "email", "nov", "/features"),
                104: (None, None, None, "/"), 106: ("google", "cpc", "winter", "/pricing")}
    got = {cid: tuple(row[c] for c in ATTRIBUTION_COLUMNS) for cid, row in marts[ORG]["fct"].items()}
    assert got == {cid: expected.get(cid, (None,) * 4) for cid in HAND_COMPUTED_FCT}
    assert tuple(marts[OTHER_ORG]["fct"][101][c] for c in ATTRIBUTION_COLUMNS) == ("linkedin", "social", "q4", "/demo")


ATTRIBUTION_METRICS = ("conversations", "responded_conversations", "bot_conversations", "handed_off_conversations",
                       "handoff_rate", "first_response_p50_seconds", "open_to_close_p50_seconds")
UNTRACKED, NONE = ("(untracked)",) * 3, ("(none)",) * 3


def test_agg_attribution_daily_matches_hand_computed_values(built):
    assert_all_passed(built["result"])
    expected = {
        (ORG, D1, *GOOGLE): (1, 1, 0, 0, None, 90.25, 1860.0),            # 101
        (ORG, D1, *NEWSLETTER): (1, 1, 1, 1, 1.0, 180.0, 3600.0),         # 103
        (ORG, D1, *NONE): (1, 0, 1, 0, 0.0, None, 1860.0),                # 104
        (ORG, D1, *UNTRACKED): (2, 1, 1, 0, 0.0, 120.0, 1800.0),          # 102, 105
        (ORG, D2, *GOOGLE): (1, 1, 0, 0, None, 241200.0, 244860.0),       # 106
        (ORG, D2, *UNTRACKED): (1, 0, 0, 0, None, None, None),            # 107
        (ORG, D3, *UNTRACKED): (2, 1, 0, 0, None, 9000.0, 5550.25),       # 108, 109
        (OTHER_ORG, D1, "linkedin", "social", "q4"): (1, 1, 0, 0, None, 45.0, None),
    }
    assert_rows_match(_snapshot(built["home"])["attribution"],
                      {k: dict(zip(ATTRIBUTION_METRICS, v)) for k, v in expected.items()}, ATTRIBUTION_METRICS)


def test_late_widget_event_updates_attribution_in_the_incremental_path(built):
    """A widget event applied after its conversation was built re-attributes it: the incremental
    fct rebuilds just that conversation, the attribution aggregate its day, equal to a full refresh."""
    home = copy_of_built(built)
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        load_widget_events(conn, [
            widget(ORG, 102, "2026-10-29 13:59:50", ("bing", "cpc", "spring"), "/blog"),  # was untracked
            widget(ORG, 101, "2026-10-29 11:58:00", NEWSLETTER, "/home"),                 # an earlier touch
        ], SECOND_SYNC)
        built_at = conn.execute("select max(_refreshed_at) from marts.fct_conversations").fetchone()[0]

    target = built["target"]
    assert_all_passed(dbt(home, target, "build", "--select", "+marts", "--exclude-resource-type", "unit_test"))
    incremental = _snapshot(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        rebuilt = {r[0] for r in conn.execute(
            "select conversation_id from marts.fct_conversations where _refreshed_at > ?", [built_at]).fetchall()}
    assert rebuilt == {101, 102}
    fct = incremental["fct"]
    assert tuple(fct[(ORG, 101)][c] for c in ATTRIBUTION_COLUMNS) == (*NEWSLETTER, "/home")
    assert tuple(fct[(ORG, 102)][c] for c in ATTRIBUTION_COLUMNS) == ("bing", "cpc", "spring", "/blog")
    day_one = {k[2:]: v["conversations"] for k, v in incremental["attribution"].items() if k[:2] == (ORG, D1)}
    assert day_one == {NEWSLETTER: 2, ("bing", "cpc", "spring"): 1, NONE: 1, UNTRACKED: 1}

    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh"))
    assert incremental == _snapshot(home)


def test_fct_built_before_new_columns_gains_them_on_every_row_at_the_next_incremental_run(built):
    """An existing warehouse upgrades without a --full-refresh: the nightly run adds the columns
    (attribution, playbooks and meetings) and, since they are computed from data every row
    already had, rebuilds every row once, so the upgrade equals a full refresh."""
    home = copy_of_built(built)
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        for column in (*ATTRIBUTION_COLUMNS, *PLAYBOOK_COLUMNS):
            conn.execute(f"alter table marts.fct_conversations drop column {column}")
        conn.execute("drop table marts.agg_playbook_daily")
        load_widget_events(conn, [widget(ORG, 102, "2026-10-29 13:59:50", GOOGLE, "/pricing")], SECOND_SYNC)

    assert_all_passed(dbt(home, built["target"], "build", "--select", "+marts", "--exclude-resource-type", "unit_test"))
    upgraded = _snapshot(home)
    fct = upgraded["fct"]
    assert tuple(fct[(ORG, 102)][c] for c in ATTRIBUTION_COLUMNS) == (*GOOGLE, "/pricing")
    assert tuple(fct[(ORG, 101)][c] for c in ATTRIBUTION_COLUMNS) == (*GOOGLE, "/pricing")  # untouched, filled
    assert tuple(fct[(ORG, 104)][c] for c in PLAYBOOK_COLUMNS) == (*DEMO, True, _at("2026-10-29 16:05:00"))
    assert_all_passed(dbt(home, built["target"], "run", "--select", "+marts", "--full-refresh"))
    assert upgraded == _snapshot(home)


# ---------------------------------------------------------------- meetings and playbooks

PLAYBOOK_COLUMNS = ("playbook_id", "playbook_name", "meeting_booked", "first_meeting_scheduled_at")
PRICING, DEMO = (501, "Pricing page"), (502, "Demo request")
NOT_BOOKED = (False, None)


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def test_fct_conversations_playbook_and_meeting_columns_match_hand_computed_values(marts):
    expected = {
        101: (*PRICING, True, _at("2026-10-29 13:05:00")),  # cancelled, rebooked: the second booking
        102: (*PRICING, *NOT_BOOKED),
        103: (*PRICING, *NOT_BOOKED),                       # cancelled by a later observed change
        104: (*DEMO, True, _at("2026-10-29 16:05:00")),     # an older cancellation does not count
        105: (None, None, *NOT_BOOKED),
        106: (*PRICING, *NOT_BOOKED),
        107: (599, None, True, _at("2026-10-30 21:03:00")),  # playbook never listed: no name
        108: (*DEMO, *NOT_BOOKED),
        109: (*DEMO, *NOT_BOOKED),
    }
    got = {cid: tuple(row[c] for c in PLAYBOOK_COLUMNS) for cid, row in marts[ORG]["fct"].items()}
    assert got == expected
    assert tuple(marts[OTHER_ORG]["fct"][101][c] for c in PLAYBOOK_COLUMNS) == (
        501, "Zed's playbook", True, _at("2026-10-29 11:01:00"))


MEETING_COLUMNS = ("status", "is_cancelled", "meeting_source", "conversation_id", "playbook_id", "scheduled_at",
                   "slot_start_at", "lead_time_seconds", "booked_in_conversation")


def test_fct_meetings_matches_hand_computed_values(built):
    assert_all_passed(built["result"])
    expected = {
        (ORG, "m-101a"): ("CANCELED", True, "chat", 101, 501, "2026-10-29 12:05:00", "2026-11-05 15:00:00",
                          7 * 86400 + 2 * 3600 + 55 * 60, True),
        (ORG, "m-101b"): ("ACTIVE", False, "chat", 101, 501, "2026-10-29 13:05:00", "2026-11-06 15:00:00",
                          8 * 86400 + 1 * 3600 + 55 * 60, True),
        (ORG, "m-103"): ("cancelled", True, "chat", 103, 501, "2026-10-29 15:10:00", "2026-11-03 16:00:00",
                         5 * 86400 + 50 * 60, True),
        (ORG, "m-104"): ("ACTIVE", False, "chat", 104, 502, "2026-10-29 16:05:00", "2026-11-04 16:05:30.500",
                         6 * 86400 + 30.5, True),
        (ORG, "m-107"): ("ACTIVE", False, "chat", 107, 599, "2026-10-30 21:03:00", "2026-11-02 17:00:00",
                         2 * 86400 + 19 * 3600 + 57 * 60, True),
        (ORG, "m-email"): ("ACTIVE", False, "EMAIL_DROP", None, None, "2026-10-29 10:00:00", "2026-10-30 10:00:00",
                           86400, False),
        (ORG, "m-999"): ("ACTIVE", False, "chat", 999, None, "2026-10-31 09:00:00", "2026-11-01 09:00:00",
                         86400, True),  # its conversation was never synced: no playbook known
        (OTHER_ORG, "m-101a"): ("ACTIVE", False, "chat", 101, 501, "2026-10-29 11:01:00", "2026-10-30 11:01:00",
                                86400, True),
    }
    rows = {}
    for key, values in expected.items():
        row = dict(zip(MEETING_COLUMNS, values))
        row["scheduled_at"], row["slot_start_at"] = _at(row["scheduled_at"]), _at(row["slot_start_at"])
        row["lead_time_seconds"] = float(row["lead_time_seconds"])
        rows[key] = row
    assert_rows_match(_snapshot(built["home"])["meetings"], rows, MEETING_COLUMNS)


PLAYBOOK_METRICS = ("playbook_name", "conversations", "engaged_conversations", "handed_off_conversations",
                    "meetings_booked", "meeting_rate", "first_response_p50_seconds")


def _playbook_rows(expected: dict) -> dict:
    return {key: dict(zip(PLAYBOOK_METRICS, values)) for key, values in expected.items()}


def test_agg_playbook_daily_matches_hand_computed_values(built):
    """Conversations without a playbook (105) and meetings outside a conversation count nowhere;
    a playbook never listed (599) is still a row, without a name; 108 (no message) is not engaged."""
    assert_all_passed(built["result"])
    expected = {
        (ORG, D1, 501): ("Pricing page", 3, 3, 1, 1, 1 / 3, 120.0),      # 101, 102, 103
        (ORG, D1, 502): ("Demo request", 1, 1, 0, 1, 1.0, None),         # 104
        (ORG, D2, 501): ("Pricing page", 1, 1, 0, 0, 0.0, 241200.0),     # 106
        (ORG, D2, 599): (None, 1, 1, 0, 1, 1.0, None),                   # 107
        (ORG, D3, 502): ("Demo request", 2, 1, 0, 0, 0.0, 9000.0),       # 108, 109
        (OTHER_ORG, D1, 501): ("Zed's playbook", 1, 1, 0, 1, 1.0, 45.0),
    }
    assert_rows_match(_snapshot(built["home"])["playbooks"], _playbook_rows(expected), PLAYBOOK_METRICS)


def _refreshed(home: Path) -> dict:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        return dict(conn.execute("select conversation_id, _refreshed_at from marts.fct_conversations "
                                 "where org_id = ?", [ORG]).fetchall())


def test_meeting_changes_and_playbook_renames_reach_the_marts_incrementally(built):
    """A second sync: 101's rebooked meeting is cancelled too, 103 is rebooked, playbook 501 is
    renamed and 599 listed for the first time; every other meeting and playbook is re-written
    unchanged (the streams re-list them). The incremental run rebuilds exactly the conversations
    those changes touch, the marts show the latest names everywhere, and equal a full refresh."""
    home = copy_of_built(built)
    before = _refreshed(home)
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        rebooked = meeting(ORG, "m-103b", "ACTIVE", 103, "2026-11-03 11:00:00", "2026-11-10 11:00:00",
                           "2026-11-03 11:00:00")
        load_meetings(conn, [*MEETINGS, rebooked], [
            *MEETING_CHANGES,
            meeting_change(ORG, "m-101b", "2026-11-03 10:00:00", "CANCELED", "2026-11-06 15:00:00"),
        ], SECOND_SYNC)
        load_playbooks(conn, [(ORG, 501, "Pricing page v2"), (ORG, 502, "Demo request"), (ORG, 599, "Webinar"),
                              (OTHER_ORG, 501, "Zed's playbook")], SECOND_SYNC)

    target = built["target"]
    assert_all_passed(dbt(home, target, "build", "--select", "+marts", "--exclude-resource-type", "unit_test"))
    incremental = _snapshot(home)
    after = _refreshed(home)
    assert {cid for cid in after if after[cid] != before[cid]} == {101, 102, 103, 106, 107}, \
        "re-listed unchanged meetings and playbooks rebuild nothing (104, 108, 109)"

    fct = {k[1]: v for k, v in incremental["fct"].items() if k[0] == ORG}
    v2 = (501, "Pricing page v2")
    assert {cid: tuple(row[c] for c in PLAYBOOK_COLUMNS) for cid, row in fct.items()} == {
        101: (*v2, *NOT_BOOKED),                          # both meetings cancelled now
        102: (*v2, *NOT_BOOKED),
        103: (*v2, True, _at("2026-11-03 11:00:00")),     # rebooked
        104: (*DEMO, True, _at("2026-10-29 16:05:00")),
        105: (None, None, *NOT_BOOKED),
        106: (*v2, *NOT_BOOKED),
        107: (599, "Webinar", True, _at("2026-10-30 21:03:00")),
        108: (*DEMO, *NOT_BOOKED),
        109: (*DEMO, *NOT_BOOKED),
    }
    meetings = incremental["meetings"]
    assert (meetings[(ORG, "m-101b")]["status"], meetings[(ORG, "m-101b")]["is_cancelled"]) == ("CANCELED", True)
    assert meetings[(ORG, "m-103b")]["playbook_id"] == 501 and not meetings[(ORG, "m-103b")]["is_cancelled"]
    expected = {
        (ORG, D1, 501): ("Pricing page v2", 3, 3, 1, 1, 1 / 3, 120.0),   # 103 booked, 101 not any more
        (ORG, D1, 502): ("Demo request", 1, 1, 0, 1, 1.0, None),
        (ORG, D2, 501): ("Pricing page v2", 1, 1, 0, 0, 0.0, 241200.0),
        (ORG, D2, 599): ("Webinar", 1, 1, 0, 1, 1.0, None),
        (ORG, D3, 502): ("Demo request", 2, 1, 0, 0, 0.0, 9000.0),
        (OTHER_ORG, D1, 501): ("Zed's playbook", 1, 1, 0, 1, 1.0, 45.0),
    }
    assert_rows_match(incremental["playbooks"], _playbook_rows(expected), PLAYBOOK_METRICS)

    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh"))
    assert incremental == _snapshot(home)


def test_marts_built_before_reply_breadth_are_filled_on_the_next_incremental_run(built):
    """An upgrade needs no --full-refresh: fct and the daily aggregates built before the reply
    columns existed gain them, filled for every old row, as a full refresh would."""
    home = copy_of_built(built)
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        for column in REPLY_COLUMNS:
            conn.execute(f"alter table marts.fct_conversations drop column {column}")
        for table in ("agg_daily_metrics", "agg_agent_daily"):
            for column in DAILY_REPLY_COLUMNS:
                conn.execute(f"alter table marts.{table} drop column {column}")
        for model in ("int_drift__replies", "int_drift__business_hours_replies", "int_drift__reply_time_metrics",
                      "int_drift__agent_activity", "int_drift__touch_resolution", "int_drift__business_hours_calendar"):
            conn.execute(f"drop table intermediate.{model}")

    target = built["target"]
    assert_all_passed(dbt(home, target, "run", "--select", "+marts"))
    upgraded = _snapshot(home)
    assert upgraded["fct"][(ORG, 103)]["touch_class"] == "multi"
    assert upgraded["daily"][(ORG, D1)]["reply_time_p90_seconds"] == 156.0
    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh"))
    assert upgraded == _snapshot(home)


def load_second_sync(home: Path, dataset: dict) -> tuple[dict, set, set]:
    """changed_dataset(dataset) loaded into `home`'s raw tables: the erased conversations'
    rows deleted, the reloaded ones stamped SECOND_SYNC. Returns what changed_dataset does."""
    changed, reloaded, erased = changed_dataset(dataset)
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        for org_id, conversation_id in erased:
            for table in ("conversations", "messages", "status_events"):
                conn.execute(f"delete from raw.{table} where org_id = ? and conversation_id = ?",
                             [org_id, conversation_id])
        load_raw(conn, changed, SECOND_SYNC, only=reloaded)
    return changed, reloaded, erased


def changed_dataset(dataset: dict) -> tuple[dict, set, set]:
    """The dataset after a second sync: (new dataset, re-loaded keys, erased keys)."""
    org1 = dataset[ORG]
    conversations = {c["id"]: dict(c) for c in org1["conversations"]}
    messages = {k: list(v) for k, v in org1["messages"].items()}
    events = list(org1["status_events"])

    messages[107].append(agent_says(7004, "2026-10-30 21:05:00", 9))          # D2 gains a responder
    messages[109].append(message(9003, "2026-11-02 17:30:00", "edit", "user", 8,
                                 edited=9002, edit_type="delete"))            # D3 loses its only responder
    events.append(event(109, "open", "2026-11-02 17:00:00"))                  # ... and 109 is reopened
    conversations[109].update(status="open", updatedAt=ms("2026-11-02 17:30:00"))
    conversations[108].update(createdAt=ms("2026-11-03 09:00:00"))            # moves from D3 to D4
    conversations[110] = conversation(110, "open", "2026-11-03 13:59:00", "2026-11-03 14:00:30")
    messages[110] = [contact_says(11001, "2026-11-03 14:00:00"), agent_says(11002, "2026-11-03 14:00:30", 7)]
    del conversations[105], messages[105]                                     # erased: D1 changes only by count
    events = [e for e in events if e[0] != 105]
    users = [dict(u, name="Ada Lovelace") if u["id"] == 7 else u for u in org1["users"]]  # D1 agent name

    new = {
        ORG: {"conversations": list(conversations.values()), "messages": messages,
              "status_events": events, "users": users},
        OTHER_ORG: {"conversations": [], "messages": {}, "status_events": [],
                    "users": dataset[OTHER_ORG]["users"]},                    # org 2's only conversation erased
    }
    reloaded = {(ORG, 107), (ORG, 108), (ORG, 109), (ORG, 110)}
    erased = {(ORG, 105), (OTHER_ORG, 101)}
    return new, reloaded, erased


def test_incremental_build_equals_full_refresh(built):
    home = copy_of_built(built)
    dataset, reloaded, erased = load_second_sync(home, built["dataset"])

    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        conn.execute("update raw.users set name = 'Ada Lovelace', synced_at = ? where org_id = ? and user_id = 7",
                     [SECOND_SYNC, ORG])
        untouched_before = conn.execute(
            "select conversation_id, _refreshed_at from marts.fct_conversations where org_id = 1 "
            "and conversation_id in (101, 102, 103, 104, 106)").fetchall()

    target = built["target"]
    assert_all_passed(dbt(home, target, "build", "--select", "+marts", "--exclude-resource-type", "unit_test"))
    incremental = _snapshot(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        untouched_after = conn.execute(
            "select conversation_id, _refreshed_at from marts.fct_conversations where org_id = 1 "
            "and conversation_id in (101, 102, 103, 104, 106)").fetchall()
        rebuilt = conn.execute(
            "select count(*) from marts.fct_conversations where _refreshed_at > ?", [max(r[1] for r in untouched_before)]
        ).fetchone()[0]
    assert sorted(untouched_after) == sorted(untouched_before), "untouched conversations were rebuilt"
    assert rebuilt == 4, "only the reloaded conversations are rebuilt"
    # The hard-deleted conversations stay in the watermarks, marked departed: every model
    # dropped their rows by key (the marts' comparison below proves the rest).
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        departed = set(conn.execute("select org_id, conversation_id from intermediate.int_drift__conversation_watermarks "
                                    "where is_departed").fetchall())
        left_behind = conn.execute(
            "select count(*) from intermediate.int_drift__chat_messages as m join "
            "intermediate.int_drift__conversation_watermarks as w using (org_id, conversation_id) "
            "where w.is_departed").fetchone()[0]
    assert departed == erased and left_behind == 0
    # The incremental path reads the intermediate models, which rebuilt just those
    # conversations too (the same rebuild set, from the watermarks).
    fct_sql = (target / "compiled" / "drift_pipeline" / "models" / "marts" / "fct_conversations.sql").read_text()
    assert "int_drift__first_response" in fct_sql and "int_drift__close_times" in fct_sql
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        for model in ("int_drift__close_times", "int_drift__message_counts"):
            rebuilt_ids = {r[0] for r in conn.execute(
                f"select conversation_id from intermediate.{model} where _source_synced_at >= ?",
                [SECOND_SYNC]).fetchall()}
            assert rebuilt_ids and rebuilt_ids <= {cid for org, cid in reloaded if org == ORG}, model

    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh"))
    full = _snapshot(home)
    assert incremental == full

    marts_now = {org: {"fct": {k[1]: v for k, v in full["fct"].items() if k[0] == org},
                       "daily": {k[1]: v for k, v in full["daily"].items() if k[0] == org},
                       "agent": {(k[1], k[2]): v for k, v in full["agent"].items() if k[0] == org}}
                 for org in (ORG, OTHER_ORG)}
    _assert_marts_match_reference(marts_now[ORG], dataset, ORG)
    assert marts_now[OTHER_ORG] == {"fct": {}, "daily": {}, "agent": {}}
    assert (D3, 8) not in marts_now[ORG]["agent"] and marts_now[ORG]["agent"][(D1, 7)]["agent_name"] == "Ada Lovelace"
    assert marts_now[ORG]["fct"][109]["reopen_count"] == 1
    # Reply breadth follows the changes: 107 got a reply (300 s, Fri 17:00 EDT: after closing);
    # 109 lost its only reply and agent message, keeps its first close: touch none; 110 is new
    # (30 s at 09:00 EST).
    changed_replies = {107: (1, 300.0, 300.0, 300.0, 0.0, 0.0, 1, 0, None),
                       109: (0, None, None, 0.0, None, None, 0, 0, "none"),
                       110: (1, 30.0, 30.0, 30.0, 30.0, 30.0, 1, 0, None)}
    assert_rows_match({cid: marts_now[ORG]["fct"][cid] for cid in changed_replies},
                      {cid: dict(zip(REPLY_COLUMNS, v)) for cid, v in changed_replies.items()}, REPLY_COLUMNS)
    # The backlog across 109's reopen (closed 16:00, open again 17:00 on 11-02): back in it at
    # the end of 11-02 with 102 and 107, and at the end of 11-03 with the new 110 (11-03 is the
    # newest day now); org 2's only conversation is gone.
    backlog = {key[1]: row["open_conversations"] for key, row in full["backlog"].items()}
    assert backlog == {D1: 1, D2: 3, date(2026, 10, 31): 3, date(2026, 11, 1): 3, D3: 3, D4: 4}


def test_backlog_rebuilds_only_the_days_from_where_status_periods_changed(built):
    """102 (open since 10-29) is closed at 11-02 15:00 and 107 only gets a message: org 1's
    periods change from 11-02 15:00, so its backlog rebuilds 11-02 only; the days before keep the
    rows the first build wrote. Org 2's 101 gets a late report of its close at 10-29 11:30: its
    10-29 row goes. Both equal a full refresh."""
    home = copy_of_built(built)
    dataset = copy.deepcopy(built["dataset"])
    conversations = {c["id"]: c for c in dataset[ORG]["conversations"]}
    conversations[102].update(status="closed", updatedAt=ms("2026-11-02 15:00:00"))
    dataset[ORG]["status_events"].append(event(102, "closed", "2026-11-02 15:00:00"))
    conversations[107].update(updatedAt=ms("2026-11-02 15:30:00"))
    dataset[ORG]["messages"][107].append(contact_says(7005, "2026-11-02 15:30:00"))
    dataset[OTHER_ORG]["conversations"][0].update(status="closed", updatedAt=ms("2026-10-29 11:30:00"))
    dataset[OTHER_ORG]["status_events"].append(event(101, "closed", "2026-10-29 11:30:00"))
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        load_raw(conn, dataset, SECOND_SYNC, only={(ORG, 102), (ORG, 107), (OTHER_ORG, 101)})
        first_read = conn.execute("select max(_periods_synced_at) from marts.agg_daily_backlog").fetchone()[0]

    target = built["target"]
    assert_all_passed(dbt(home, target, "build", "--select", "+marts", "--exclude-resource-type", "unit_test"))
    incremental = _snapshot(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        changed_from = dict(conn.execute(
            "select conversation_id, max(_periods_changed_from) from intermediate.int_drift__status_periods "
            "where org_id = ? and conversation_id in (102, 107) group by conversation_id", [ORG]).fetchall())
        rebuilt_days = {r[0] for r in conn.execute(
            "select metric_date from marts.agg_daily_backlog where org_id = ? and _periods_synced_at > ?",
            [ORG, first_read]).fetchall()}
    assert changed_from == {102: datetime(2026, 11, 2, 15, 0), 107: None}
    assert rebuilt_days == {D3}
    # 102 leaves the end of 11-02; 107 (created 10-30 21:00) is 3 days 3 hours old there
    expected = {
        (ORG, D1, 3): (1, 36010.0, 36010.0, 0),
        (ORG, D2, 3): (3, 14460.0, 100820.0, 0),
        (ORG, date(2026, 10, 31), 3): (3, 100860.0, 187220.0, 0),
        (ORG, date(2026, 11, 1), 3): (3, 187260.0, 273620.0, 0),
        (ORG, D3, 3): (1, 270000.0, 270000.0, 0),
    }
    assert_rows_match(incremental["backlog"], {k: dict(zip(BACKLOG_COLUMNS, v)) for k, v in expected.items()},
                      BACKLOG_COLUMNS)
    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh"))
    assert _snapshot(home)["backlog"] == incremental["backlog"]


def test_schedule_change_rebuilds_every_row_like_a_full_refresh(built):
    """A business-hours change makes the incremental fct rebuild every row (through the scoped
    path, with every conversation in scope), and that equals a full refresh with the new vars."""
    home = copy_of_built(built)
    holidays = json.dumps({"business_holidays": ["2026-10-29"]})
    target = built["target"]

    # +marts: the intermediate views are created with the vars in force, as the pipeline runs them.
    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--vars", holidays))
    incremental = _snapshot(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        rows, rebuilt = conn.execute(
            "select count(*), count(case when _refreshed_at = (select max(_refreshed_at) "
            "from marts.fct_conversations) then 1 end) from marts.fct_conversations").fetchone()
    assert rows == rebuilt == 10

    assert_all_passed(dbt(home, target, "run", "--select", "+marts", "--full-refresh", "--vars", holidays))
    assert incremental == _snapshot(home)
    assert incremental["fct"][(ORG, 102)]["first_response_business_seconds"] == 0.0  # 120 s before
    assert incremental["fct"][(ORG, 109)]["first_response_business_seconds"] == 5400.0
    # the reply times in business hours follow the schedule too (103's replies were on 10-29)
    assert incremental["fct"][(ORG, 103)]["reply_time_max_business_seconds"] == 0.0
    assert incremental["fct"][(ORG, 109)]["reply_time_max_business_seconds"] == 5400.0


def _snapshot(home: Path) -> dict:
    """Every mart row keyed by its grain, without the incremental bookkeeping columns."""
    keys = {"fct": ("marts.fct_conversations", ("org_id", "conversation_id")),
            "daily": ("marts.agg_daily_metrics", ("org_id", "metric_date")),
            "agent": ("marts.agg_agent_daily", ("org_id", "metric_date", "user_id")),
            "attribution": ("marts.agg_attribution_daily",
                            ("org_id", "metric_date", "utm_source", "utm_medium", "utm_campaign")),
            "meetings": ("marts.fct_meetings", ("org_id", "slug")),
            "playbooks": ("marts.agg_playbook_daily", ("org_id", "metric_date", "playbook_id")),
            "backlog": ("marts.agg_daily_backlog", ("org_id", "metric_date", "inbox_id")),
            "sla": ("marts.fct_sla_events", ("org_id", "conversation_id", "turn_number", "sla_policy"))}
    snapshot = {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        for name, (table, key) in keys.items():
            cursor = conn.execute(f"select * from {table}")
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, values)) for values in cursor.fetchall()]
            snapshot[name] = {
                tuple(r[k] for k in key): {c: v for c, v in r.items() if not c.startswith("_")}
                for r in rows
            }
    return snapshot


# ---------------------------------------------------------------- tests on what changed

CHANGED_ONLY = json.dumps({"drift_tests_scope": "changed"})


def _plant_duplicate(home: Path, conversation_id: int) -> None:
    """A second row for one conversation in an incremental intermediate table (a model bug)."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        conn.execute("insert into intermediate.int_drift__message_counts select * from "
                     "intermediate.int_drift__message_counts where org_id = ? and conversation_id = ?",
                     [ORG, conversation_id])


def _plant_null(home: Path, conversation_id: int) -> None:
    """A null where a model promises none (`not_null_columns`): a conversation's reopen count."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        conn.execute("update intermediate.int_drift__close_times set reopen_count = null "
                     "where org_id = ? and conversation_id = ?", [ORG, conversation_id])


def _failures(run: DbtRun, test_prefix: str) -> dict:
    return {r["unique_id"]: (r["status"], r["failures"]) for r in run.results
            if r["unique_id"].startswith(test_prefix)}


def test_nightly_scoped_tests_catch_a_planted_bad_row_in_what_changed(built, tmp_path):
    """The nightly path's data tests read only the conversations the run rebuilt: a bad row in a
    changed conversation fails them; the same bad row in an unchanged conversation is outside
    their scope, and the full tests (`--full-tests`, CI) still see both."""
    home = copy_of_built(built)
    dataset, reloaded, _ = changed_dataset(built["dataset"])
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        load_raw(conn, dataset, SECOND_SYNC, only=reloaded)
    target = tmp_path / "target"

    # The nightly build: scoped tests over the reloaded conversations pass.
    nightly = dbt(home, target, "build", "--exclude-resource-type", "unit_test", "--vars", CHANGED_ONLY)
    assert_all_passed(nightly)
    compiled = {r["unique_id"]: r["compiled_code"] for r in nightly.results if r["unique_id"].startswith("test.")}
    unique_test = "test.drift_pipeline.unique_combination_int_drift__message_counts"
    assert all("drift_changed" in sql for test, sql in compiled.items() if test.startswith(unique_test))
    assert not any("drift_changed" in sql for test, sql in compiled.items() if "agg_daily_metrics" in test), \
        "the per-day aggregates are small and tested whole"
    meetings_tests = [sql for test, sql in compiled.items() if "fct_meetings" in test or "meeting_latest" in test]
    assert meetings_tests and not any("drift_changed" in sql for sql in meetings_tests), \
        "models keyed by a meeting (which may name no conversation) opt out and are tested whole"
    per_conversation = [sql for test, sql in compiled.items()
                        if test.startswith("test.drift_pipeline.unique_combination_int_drift__conversation_meetings")]
    assert per_conversation and all("drift_changed" in sql for sql in per_conversation)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        in_scope = {r[0] for r in conn.execute(
            "select conversation_id from intermediate.int_drift__conversation_watermarks, main.drift_tests_scope "
            "where source_synced_at > changed_after").fetchall()}
    assert in_scope == {cid for org, cid in reloaded if org == ORG}

    # A bad row in a conversation this run rebuilt (109) and one in an untouched one (101).
    # The same for a null where the model promises none.
    _plant_duplicate(home, 109)
    _plant_duplicate(home, 101)
    _plant_null(home, 109)
    _plant_null(home, 101)
    not_null_test = "test.drift_pipeline.not_null_columns_int_drift__close_times"
    selected = ("--select", "int_drift__message_counts", "int_drift__close_times")
    scoped = dbt(home, target, "test", *selected, "--vars", CHANGED_ONLY)
    assert scoped.returncode != 0
    assert list(_failures(scoped, unique_test).values()) == [("fail", 1)], scoped.output[-3000:]
    assert list(_failures(scoped, not_null_test).values()) == [("fail", 1)], scoped.output[-3000:]
    others = [r for r in scoped.results if not r["unique_id"].startswith((unique_test, not_null_test))]
    assert others and all(r["status"] in ("pass", "success") for r in others)  # unit tests say success

    full = dbt(home, target, "test", *selected)
    assert full.returncode != 0
    assert list(_failures(full, unique_test).values()) == [("fail", 2)], full.output[-3000:]
    assert list(_failures(full, not_null_test).values()) == [("fail", 2)], full.output[-3000:]
