"""Our marts against Drift's reports: parsing Drift's answer, the windows it is asked for, and
why a conversation's figures differ, each reason on a small hand-made conversation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from drift_pipeline import reconcile
from drift_pipeline.reconcile import (
    DAY_MS,
    Ours,
    RawConversation,
    RawMessage,
    StatusEvent,
    classify,
    compare,
    fetch_reports,
    parse_report,
    report_windows,
)
from drift_pipeline.timeutil import ts_to_ms

T0 = datetime(2026, 11, 14, 9, 0, 0)
T0_MS = ts_to_ms(T0)
AGENT, BOT = 7_100_001, 7_199_001


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ms(seconds: float) -> int:
    return T0_MS + int(seconds * 1000)


def contact(mid: int, seconds: float) -> RawMessage:
    return RawMessage(mid, at(seconds), "chat", "contact", False)


def agent(mid: int, seconds: float, kind: str = "chat") -> RawMessage:
    return RawMessage(mid, at(seconds), kind, "user", False)


def bot(mid: int, seconds: float) -> RawMessage:
    return RawMessage(mid, at(seconds), "chat", "user", True)


def delete(mid: int, seconds: float, target: int) -> RawMessage:
    return RawMessage(mid, at(seconds), "edit", "user", False, target, "delete")


def ours(**fields) -> Ours:
    base = {"conversation_id": 1, "created_at": T0, "updated_at": at(3600), "synced_at": at(7200)}
    return Ours(**{**base, **fields})


# -- Drift's answer ---------------------------------------------------------------------------
def test_nan_null_and_unreadable_metrics_are_absent_and_ids_may_be_strings():
    answer = {"count": 3, "data": [
        {"conversationId": "3100000001", "metrics": [1794650000000, "NaN", 1794650000000.0, "12"]},
        {"conversationId": 3100000002, "metrics": [float("nan"), None, True]},  # short: the rest absent
        {"conversationId": "not a number", "metrics": [1]},
        "junk",
    ]}
    rows = parse_report(answer)
    assert rows == {
        3100000001: {"firstCloseAt": 1794650000000, "timeToCloseMillis": None,
                     "firstAgentMessageAt": 1794650000000, "timeToAgentResponseMillis": 12},
        3100000002: {"firstCloseAt": None, "timeToCloseMillis": None, "firstAgentMessageAt": None,
                     "timeToAgentResponseMillis": None},
    }
    assert parse_report({"error": {"message": "nope"}}) == {} and parse_report(None) == {}


def test_windows_are_days_whose_inclusive_ends_do_not_overlap():
    assert report_windows(0, 2 * DAY_MS - 1) == [(0, DAY_MS - 1), (DAY_MS, 2 * DAY_MS - 1)]
    assert report_windows(5, 5) == [(5, 5)]
    assert report_windows(0, DAY_MS) == [(0, DAY_MS - 1), (DAY_MS, DAY_MS)]


def test_the_check_window_ends_when_the_sync_began_and_spans_at_most_two_weeks():
    start, end = datetime(2026, 1, 1), datetime(2026, 3, 1)
    assert reconcile.check_window(start, end, datetime(2026, 2, 10, 6)) == (
        datetime(2026, 1, 27, 6), datetime(2026, 2, 10, 6))
    assert reconcile.check_window(datetime(2026, 2, 9), datetime(2026, 2, 10), None) == (
        datetime(2026, 2, 9), datetime(2026, 2, 10))
    assert reconcile.check_window(datetime(2026, 2, 9), datetime(2026, 2, 10), datetime(2026, 2, 8)) is None


def test_reports_are_asked_once_per_day_whatever_the_number_of_conversations():
    calls = []

    async def report(low, high, metrics):
        calls.append((low, high))
        # 500 conversations a day: more conversations never means more calls.
        data = [{"conversationId": low + i, "metrics": [None] * len(metrics)} for i in range(500)]
        return {"count": len(data), "data": data}

    rows, count = asyncio.run(fetch_reports(report, 0, 3 * DAY_MS - 1))
    assert count == len(calls) == 3 and len(rows) == 1500
    assert calls == [(0, DAY_MS - 1), (DAY_MS, 2 * DAY_MS - 1), (2 * DAY_MS, 3 * DAY_MS - 1)]


def test_a_truncated_answer_is_asked_again_in_halves():
    calls = []

    async def report(low, high, metrics):
        calls.append((low, high))
        everything = [t for t in range(0, DAY_MS, DAY_MS // 8) if low <= t <= high]
        shown = everything[:4]  # this "Drift" returns at most 4 rows and says how many there were
        return {"count": len(everything), "data": [{"conversationId": t, "metrics": [1, 1, 1, 1]} for t in shown]}

    rows, count = asyncio.run(fetch_reports(report, 0, DAY_MS - 1))
    assert sorted(rows) == list(range(0, DAY_MS, DAY_MS // 8))
    assert count == 3 and calls[1:] == [(0, DAY_MS // 2 - 1), (DAY_MS // 2, DAY_MS - 1)]


# -- why a difference: each reason --------------------------------------------------------------
def test_a_bot_hand_off_starts_drifts_response_clock():
    raw = RawConversation((bot(1, -5), contact(2, 0), bot(3, 10), bot(4, 25), agent(5, 40)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(40), first_response_seconds=40.0)
    assert classify("time_to_agent_response", 15_000, row, raw) == ("bot_routing",)  # 40 s - 25 s
    assert classify("time_to_agent_response", 30_000, row, raw) == ("bot_routing",)  # from the first bot reply
    assert classify("time_to_agent_response", 20_000, row, raw) == ()  # no message explains 20 s


def test_a_deleted_reply_counts_for_drift_and_not_for_us():
    raw = RawConversation((contact(1, 0), agent(2, 5), delete(3, 8, target=2), agent(4, 20)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(20), first_response_seconds=20.0)
    assert classify("time_to_agent_response", 5_000, row, raw) == ("deleted_message",)
    assert classify("first_agent_message", ms(5), row, raw) == ("deleted_message",)
    # Only a deleted reply: we have no response at all, Drift has one.
    lonely = RawConversation((contact(1, 0), agent(2, 5), delete(3, 8, target=2)))
    none = ours(first_contact_message_at=at(0))
    assert classify("time_to_agent_response", 5_000, none, lonely) == ("deleted_message",)
    assert classify("first_agent_message", ms(5), none, lonely) == ("deleted_message",)


def test_a_hand_off_and_a_deleted_reply_together_name_both():
    raw = RawConversation((contact(1, 0), bot(2, 10), agent(3, 12), delete(4, 14, target=3), agent(5, 30)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(30), first_response_seconds=30.0)
    assert classify("time_to_agent_response", 2_000, row, raw) == ("bot_routing", "deleted_message")


def test_a_note_counted_by_drift_is_named():
    raw = RawConversation((contact(1, 0), agent(2, 3, "private_note"), agent(3, 10)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(10), first_response_seconds=10.0)
    assert classify("time_to_agent_response", 3_000, row, raw) == ("note",)
    assert classify("first_agent_message", ms(3), row, raw) == ("note",)


def test_an_agent_opener_is_drifts_first_agent_message_and_not_ours():
    raw = RawConversation((agent(1, -60), contact(2, 0), agent(3, 30)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(30), first_response_seconds=30.0)
    assert classify("first_agent_message", ms(-60), row, raw) == ("agent_opener",)
    # Drift's figure later than ours: Drift counts every message we count, so nothing explains it.
    assert classify("first_agent_message", ms(45), row, raw) == ()


def test_a_bot_message_taken_for_an_agents_is_named():
    raw = RawConversation((contact(1, 0), bot(2, 4), agent(3, 30)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(30), first_response_seconds=30.0)
    assert classify("first_agent_message", ms(4), row, raw) == ("bot_message",)


def test_drift_without_a_response_because_the_agent_answered_before_the_hand_off():
    raw = RawConversation((contact(1, 0), agent(2, 5), bot(3, 9)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(5), first_response_seconds=5.0)
    assert classify("time_to_agent_response", None, row, raw) == ("bot_routing",)
    assert classify("time_to_agent_response", None, row, RawConversation((contact(1, 0), agent(2, 5)))) == ()


def test_business_hours_explain_a_response_equal_to_ours_in_business_hours():
    raw = RawConversation((contact(1, 0), agent(2, 4 * 3600)))
    row = ours(first_contact_message_at=at(0), first_agent_message_at=at(4 * 3600), first_response_seconds=14_400.0,
               first_response_business_seconds=1_800.5)
    assert classify("time_to_agent_response", 1_800_500, row, raw) == ("business_hours",)


def test_a_close_from_before_we_watched_that_we_only_saw_as_the_latest_close():
    # Drift: closed at 600 s, reopened, closed again at 3600 s. We saw only the latest state.
    raw = RawConversation(status_events=(StatusEvent("closed", at(3600), "poll"),))
    row = ours(first_closed_at=at(3600), open_to_close_seconds=3600.0)
    assert classify("first_close", ms(600), row, raw) == ("reopen_before_watch",)
    assert classify("time_to_close", 600_000, row, raw) == ("reopen_before_watch",)
    # No event at all: `first_closed_at` is the `updated_at` fallback, the same bound.
    assert classify("first_close", ms(600), row, RawConversation()) == ("reopen_before_watch",)
    # A recorded reopen between a webhook close and ours.
    reopened = RawConversation(status_events=(StatusEvent("closed", at(3000), "webhook"),
                                              StatusEvent("open", at(3200), "webhook"),
                                              StatusEvent("closed", at(3600), "webhook")))
    row_reopened = ours(first_closed_at=at(3000), open_to_close_seconds=3000.0)
    assert classify("first_close", ms(600), row_reopened, reopened) == ("reopen_before_watch",)


def test_a_status_webhook_timed_on_arrival_is_late_by_seconds():
    raw = RawConversation(status_events=(StatusEvent("closed", at(604), "webhook"),))
    row = ours(first_closed_at=at(604), open_to_close_seconds=604.0)
    assert classify("first_close", ms(600), row, raw) == ("webhook_arrival",)
    # Hours late, from a webhook, without any reopen: not what arrival time explains.
    late = RawConversation(status_events=(StatusEvent("closed", at(7000), "webhook"),))
    assert classify("first_close", ms(600), ours(first_closed_at=at(7000)), late) == ()


def test_a_close_after_our_last_fetch_is_not_yet_synced():
    row = ours(synced_at=at(1000))
    assert classify("first_close", ms(1500), row, RawConversation()) == ("not_synced",)
    assert classify("first_close", ms(500), row, RawConversation()) == ()  # we fetched after it: a miss


def test_a_close_of_ours_before_drifts_first_close_is_unexplained():
    raw = RawConversation(status_events=(StatusEvent("closed", at(100), "poll"),))
    assert classify("first_close", ms(600), ours(first_closed_at=at(100)), raw) == ()
    assert classify("first_close", None, ours(first_closed_at=at(100)), raw) == ()


# -- the comparison -------------------------------------------------------------------------------
def _drift(first_close=None, first_agent=None, response=None, created=T0_MS):
    return {"firstCloseAt": first_close, "timeToCloseMillis": None if first_close is None else first_close - created,
            "firstAgentMessageAt": first_agent, "timeToAgentResponseMillis": response}


def test_compare_counts_matches_explanations_and_what_nothing_explains():
    same = ours(conversation_id=1, first_contact_message_at=at(0), first_agent_message_at=at(30),
                first_response_seconds=30.0, first_closed_at=at(600), open_to_close_seconds=600.0)
    handed_off = ours(conversation_id=2, first_contact_message_at=at(0), first_agent_message_at=at(40),
                      first_response_seconds=40.0)
    wrong_close = ours(conversation_id=3, first_closed_at=at(300), open_to_close_seconds=300.0)
    only_ours = ours(conversation_id=4)
    raws = {2: RawConversation((contact(1, 0), bot(2, 25), agent(3, 40))),
            3: RawConversation(status_events=(StatusEvent("closed", at(300), "webhook"),))}
    asked = []

    def load(ids):
        asked.append(ids)
        return {cid: raws[cid] for cid in ids}

    drift = {1: _drift(ms(600), ms(30), 30_000), 2: _drift(None, ms(40), 15_000), 3: _drift(ms(900)),
             5: _drift(ms(100))}  # 5: a conversation the warehouse lacks, closed before the sync began
    result = compare(21000001, drift, {1: same, 2: handed_off, 3: wrong_close, 4: only_ours}, load,
                     latest_sync_ms=ms(5000))
    assert asked == [[2, 3]]  # raw rows of the differing conversations only
    tallies = {m: (t.compared, t.matched, t.explained) for m, t in result.tallies.items()}
    assert tallies == {"first_close": (3, 1, 0), "time_to_close": (3, 1, 0),
                       "first_agent_message": (2, 2, 0), "time_to_agent_response": (2, 1, 1)}
    assert result.reported == 4
    assert {(d.conversation_id, d.metric, d.reasons) for d in result.differences} == {
        (2, "time_to_agent_response", ("bot_routing",)), (3, "first_close", ()), (3, "time_to_close", ()),
        (5, "first_close", ()), (5, "time_to_close", ())}
    assert not result.passed
    meta = reconcile.metadata(result)
    assert meta["unexplained_ids"] == [3, 5] and meta["unexplained"] == 4
    assert meta["agreement"]["time_to_agent_response"] == {
        "compared": 2, "matched": 1, "explained": 1, "unexplained": 0, "matched_pct": 50.0,
        "agree_or_explained_pct": 100.0}
    assert meta["reasons"]["first_close"] == {"unexplained": 2}
    assert meta["differences"][0]["reasons"] == ["unexplained"]  # what needs a look comes first


def test_a_conversation_missing_here_whose_close_came_after_the_sync_began_is_not_yet_synced():
    result = compare(1, {9: _drift(ms(6000))}, {}, lambda ids: {}, latest_sync_ms=ms(5000))
    assert [d.reasons for d in result.differences] == [("not_synced",), ("not_synced",)]


def test_the_check_passes_at_99_percent_agreeing_or_explained():
    rows = {cid: ours(conversation_id=cid, first_closed_at=at(600), open_to_close_seconds=600.0)
            for cid in range(1, 101)}

    def run(wrong: int):
        drift = {cid: _drift(ms(600) if cid > wrong else ms(900)) for cid in rows}
        raw = RawConversation(status_events=(StatusEvent("closed", at(600), "webhook"),))
        return compare(1, drift, rows, lambda ids: {cid: raw for cid in ids})

    assert run(0).passed and run(1).passed  # 99 of 100
    assert not run(2).passed  # 98 of 100
    assert run(1).tallies["first_close"].agreeing_share == pytest.approx(0.99)


def test_the_metadata_lists_at_most_fifty_differences_and_ids():
    rows = {cid: ours(conversation_id=cid, first_closed_at=at(600)) for cid in range(1, 201)}
    drift = {cid: _drift(ms(900)) for cid in rows}
    raw = RawConversation(status_events=(StatusEvent("closed", at(600), "webhook"),))
    meta = reconcile.metadata(compare(1, drift, rows, lambda ids: {cid: raw for cid in ids}))
    assert meta["unexplained"] == 400 and len(meta["differences"]) == len(meta["unexplained_ids"]) == 50


def test_without_drift_credentials_the_check_runs_but_reports_nothing(home):
    """A deployment without credentials (the `home` fixture clears them): the check's step runs,
    asks nothing and yields no result, which Dagster shows as skipped; the run succeeds."""
    from dagster import AssetSelection, AssetSpec, DagsterInstance, Definitions, define_asset_job
    from dagster_duckdb import DuckDBResource

    from drift_pipeline.assets.drift_reports import FCT_CONVERSATIONS_KEY, fct_conversations_matches_drift_reports
    from drift_pipeline.resources import DriftApiResource

    defs = Definitions(
        assets=[AssetSpec(FCT_CONVERSATIONS_KEY)], asset_checks=[fct_conversations_matches_drift_reports],
        jobs=[define_asset_job("check_only", selection=AssetSelection.checks(fct_conversations_matches_drift_reports))],
        resources={"drift": DriftApiResource(home=str(home)),
                   "duckdb": DuckDBResource(database=str(home / "warehouse.duckdb"))})
    result = defs.resolve_job_def("check_only").execute_in_process(instance=DagsterInstance.ephemeral())
    events = [e.event_type_value for e in result.all_events]
    assert result.success and "STEP_SUCCESS" in events and "ASSET_CHECK_EVALUATION" not in events
    assert not (home / "warehouse.duckdb").exists()  # not even the warehouse was opened


# -- the warehouse's side -------------------------------------------------------------------------
def test_each_orgs_latest_successful_sync_gives_the_window_and_its_raw_rows_are_read(tmp_path):
    import duckdb

    from drift_pipeline.warehouse.schema import create_raw_schema

    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    create_raw_schema(conn)
    day = datetime(2026, 11, 14)
    jobs = [  # job, org, window start, success, kind, started (finished an hour later)
        ("a1", 1, day - timedelta(days=1), True, "sync", day),
        ("a2", 1, day, True, None, day + timedelta(days=1)),  # the latest: kind unset on older rows
        ("a3", 1, day + timedelta(days=1), False, "sync", day + timedelta(days=2)),  # failed: ignored
        ("a4", 1, day + timedelta(days=3), True, "transcripts", day + timedelta(days=3)),  # an export
        ("b1", 2, day, True, "sync", day + timedelta(hours=30)),
    ]
    for job, org, start, success, kind, started in jobs:
        conn.execute("INSERT INTO raw.exports (job_id, org_id, window_start, window_end, started_at, finished_at, "
                     "success, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [job, org, start, start + timedelta(days=1), started, started + timedelta(hours=1), success, kind])
    assert reconcile.latest_sync_windows(conn) == {
        1: (day, day + timedelta(days=1), day + timedelta(days=1)),
        2: (day, day + timedelta(days=1), day + timedelta(hours=30))}

    conn.execute("INSERT INTO raw.conversations (org_id, conversation_id, updated_at) VALUES "
                 "(1, 10, ?), (1, 11, ?), (2, 10, ?)", [day + timedelta(hours=5), day + timedelta(days=1), day])
    assert reconcile.ours_updated_in(conn, 1, day, day + timedelta(days=1)) == {10}  # [start, end)
    conn.execute("INSERT INTO raw.messages (org_id, conversation_id, message_id, created_at, message_type, "
                 "author_type, is_bot, edited_message_id, edit_type) VALUES "
                 "(1, 10, 2, ?, 'edit', 'user', false, 1, 'delete'), (1, 10, 1, ?, 'chat', 'user', false, null, null), "
                 "(2, 10, 9, ?, 'chat', 'contact', false, null, null)", [at(5), at(1), at(0)])
    conn.execute("INSERT INTO raw.status_events (org_id, conversation_id, status, changed_at, source) VALUES "
                 "(1, 10, 'closed', ?, 'report')", [at(60)])
    raw = reconcile.load_raw(conn, 1, [10, 11])
    assert [m.message_id for m in raw[10].messages] == [1, 2]  # by time, the other org's left out
    assert raw[10].messages[1] == RawMessage(2, at(5), "edit", "user", False, 1, "delete")
    assert raw[10].status_events == (StatusEvent("closed", at(60), "report"),)
    assert raw[11] == RawConversation()


def test_the_agreement_reads_as_one_line_per_metric():
    agreement = {
        "first_close": {"compared": 2879, "matched": 2879, "explained": 0, "unexplained": 0},
        "first_agent_message": {"compared": 3100, "matched": 2852, "explained": 247, "unexplained": 1},
    }
    reasons = {"first_agent_message": {"deleted_message": 120, "agent_opener": 127, "unexplained": 1}}
    assert reconcile.summary_lines(agreement, reasons) == [
        "first_close: 2879 of 2879 agree",
        "first_agent_message: 2852 of 3100 agree, 247 differ for a known reason "
        "(agent_opener 127, deleted_message 120), 1 unexplained",
    ]
