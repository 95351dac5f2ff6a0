"""Incremental ingestion against the simulator: exact data, minimal calls, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import duckdb
import pytest

from drift_pipeline.timeutil import ms_to_ts

from conftest import SIM_END, query as _query, sync as _sync

END = SIM_END.replace(tzinfo=None)


def _expected_conversations(world, start, end):
    return {
        cid: c for cid, c in world.conversations.items()
        if start <= ms_to_ts(c["updatedAt"]) < end
    }


@pytest.mark.parametrize("sim_env", ["current", "legacy"], indirect=True)
def test_backfill_loads_exactly_the_simulators_data(sim_env):
    simulator, settings = sim_env
    world = simulator.world
    start = END - timedelta(days=3)
    _sync(settings, start, END)
    expected = _expected_conversations(world, start - timedelta(hours=1), END)
    assert expected, "the simulated world has conversations in the window"
    stored = {row[0]: row[1:] for row in _query(
        settings, "SELECT conversation_id, status, contact_id, inbox_id, created_at, updated_at, "
                  "participant_user_ids FROM raw.conversations")}
    assert set(stored) == set(expected)
    for cid, c in expected.items():
        assert stored[cid] == (c["status"], c["contactId"], c["inboxId"], ms_to_ts(c["createdAt"]),
                               ms_to_ts(c["updatedAt"]), list(c["participants"]))
    messages = {(r[0], r[1]): r[2:] for r in _query(
        settings, "SELECT conversation_id, message_id, created_at, message_type, author_type, author_id, "
                  "is_bot, body, edited_message_id, edit_type FROM raw.messages")}
    expected_messages = {
        (cid, m["id"]): (ms_to_ts(m["createdAt"]), m["type"], m["author"]["type"], m["author"]["id"],
                         bool(m["author"].get("bot")), m.get("body"), m.get("editedMessageId"), m.get("editType"))
        for cid in expected for m in world.messages[cid]
    }
    assert messages == expected_messages
    assert any(len(world.messages[cid]) > 50 for cid in expected), "multi-page conversations were covered"


def test_partition_boundaries_follow_updated_at_to_the_millisecond(sim_env):
    simulator, settings = sim_env
    day_start = END - timedelta(days=1)
    _sync(settings, day_start, END, overlap_minutes=0)
    stored = {r[0] for r in _query(settings, "SELECT conversation_id FROM raw.conversations")}
    assert stored == set(_expected_conversations(simulator.world, day_start, END))
    near_midnight = [
        cid for cid, c in simulator.world.conversations.items()
        if abs(ms_to_ts(c["updatedAt"]) - day_start) <= timedelta(minutes=1)
    ]
    assert near_midnight, "the simulator puts updates within a minute of midnight"
    for cid in near_midnight:
        inside = ms_to_ts(simulator.world.conversations[cid]["updatedAt"]) >= day_start
        assert (cid in stored) == inside


def test_backfill_calls_are_near_the_minimum_and_a_resync_lists_only(sim_env):
    simulator, settings = sim_env
    world = simulator.world
    start = END - timedelta(days=3)
    simulator.stats.reset()
    stats = _sync(settings, start, END)
    in_window = _expected_conversations(world, start - timedelta(hours=1), END)
    by_route = dict(simulator.stats.by_route)
    list_calls = by_route.get("list", 0)
    minimum = (list_calls + len(in_window)
               + sum(max(1, -(-len(world.messages[c]) // 50)) for c in in_window)
               + 1 + len({c["contactId"] for c in in_window.values()}))
    assert stats.api_calls == simulator.stats.requests_total
    assert simulator.stats.requests_total <= 1.05 * minimum, (by_route, minimum)

    simulator.stats.reset()
    again = _sync(settings, start, END, org_id=stats.org_id)  # the resource remembers the org
    assert set(simulator.stats.by_route) == {"list"}
    # Nothing changed: one list page reaches below what the last run left exact.
    assert again.pages == 1 and again.conversations_fetched == 0

    simulator.stats.reset()
    heal = _sync(settings, start, END, org_id=stats.org_id, full_window=True)
    assert set(simulator.stats.by_route) == {"list"} and heal.pages == stats.pages
    assert heal.conversations_fetched == 0 and heal.conversations_skipped == len(in_window)


def test_an_incremental_resync_fetches_only_what_changed_and_equals_a_full_window_one(
        sim_env, tmp_path, monkeypatch):
    from drift_pipeline.settings import Settings

    simulator, settings = sim_env
    world = simulator.world
    start = END - timedelta(days=3)
    _sync(settings, start, END)
    before = {cid: c["updatedAt"] for cid, c in world.conversations.items()}
    world.advance(minutes=120)
    new_end = ms_to_ts(world.now_ms) + timedelta(minutes=1)
    changed = {cid for cid, c in world.conversations.items() if before.get(cid) != c["updatedAt"]}
    assert changed

    simulator.stats.reset()
    stats = _sync(settings, start, new_end)
    assert stats.conversations_fetched == len(changed)
    assert stats.pages == 1 and simulator.stats.by_route["list"] == 1

    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(tmp_path / "full"))
    full = Settings.from_env()
    _sync(full, start, new_end, full_window=True)
    assert _table_snapshot(settings)["conversations"] == _table_snapshot(full)["conversations"]
    assert _table_snapshot(settings)["messages"] == _table_snapshot(full)["messages"]


def test_changes_between_syncs_are_picked_up_by_resyncing_the_last_day(sim_env):
    simulator, settings = sim_env
    world = simulator.world
    _sync(settings, END - timedelta(days=3), END)
    world.advance(minutes=90)
    new_end = ms_to_ts(world.now_ms) + timedelta(minutes=1)
    _sync(settings, END - timedelta(days=1), new_end)
    expected = _expected_conversations(world, END - timedelta(days=3, hours=1), new_end)
    stored = {r[0]: (r[1], r[2]) for r in _query(
        settings, "SELECT conversation_id, status, updated_at FROM raw.conversations")}
    for cid, c in expected.items():
        assert stored[cid] == (c["status"], ms_to_ts(c["updatedAt"]))
    expected_ids = {(cid, m["id"]) for cid in expected for m in world.messages[cid]}
    stored_ids = _query(settings, "SELECT conversation_id, message_id FROM raw.messages")
    assert len(stored_ids) == len(set(stored_ids)), "no duplicate messages"
    assert expected_ids <= set(stored_ids)


SYNC_SCRIPT = """
import sys
from datetime import datetime
sys.path.insert(0, {tests!r})
from conftest import sync as _sync
from drift_pipeline.settings import Settings
_sync(Settings.from_env(), datetime.fromisoformat({start!r}), datetime.fromisoformat({end!r}), org_id={org})
"""


@pytest.mark.slow  # several whole syncs through faults
def test_sync_killed_midway_then_rerun_equals_an_uninterrupted_one(home, make_simulator, monkeypatch, tmp_path):
    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    start, end = END - timedelta(days=3), END
    org = simulator.world.org_id

    # The uninterrupted reference, in its own home.
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(tmp_path / "reference"))
    from drift_pipeline.settings import Settings
    reference = Settings.from_env()
    _sync(reference, start, end, org_id=org)

    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(home))
    settings = Settings.from_env()
    settings.ensure_dirs()
    simulator.latency_seconds = 0.02  # slow enough to be killed between pages
    simulator.stats.reset()
    script = SYNC_SCRIPT.format(tests=os.path.dirname(__file__), start=start.isoformat(),
                                end=end.isoformat(), org=org)
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ))
    deadline = time.monotonic() + 60
    # The second list call is made only after the first page (and its checkpoint) committed.
    while (simulator.stats.by_route.get("list", 0) < 2 and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    assert proc.poll() is None, "the sync was still running when killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    simulator.latency_seconds = 0

    killed = _query(settings, "SELECT pages, page_token_checkpoint, success FROM raw.exports")
    assert killed and killed[0][0] >= 1 and killed[0][1] and killed[0][2] is None
    stats = _sync(settings, start, end, org_id=org)
    assert stats.resumed_from_job is not None

    for table, key in (("raw.conversations", "conversation_id"), ("raw.messages", "conversation_id, message_id"),
                       ("raw.participants", "conversation_id, participant_id, participant_type"),
                       ("raw.contacts", "contact_id"), ("raw.status_events", "conversation_id, status, changed_at")):
        columns = "* EXCLUDE (synced_at)" if table != "raw.status_events" else "* EXCLUDE (recorded_at)"
        sql = f"SELECT {columns} FROM {table} ORDER BY {key}"
        assert _query(settings, sql) == _query(reference, sql), table
    jobs = _query(settings, "SELECT success, error_code FROM raw.exports ORDER BY started_at")
    assert jobs == [(False, "interrupted"), (True, None)]


@pytest.mark.slow  # several whole syncs through faults
def test_a_sync_through_every_fault_equals_a_clean_run(home, make_simulator, monkeypatch, tmp_path):
    """The fault matrix: 429 storms, 5xx, resets, malformed bodies, slow answers and an access
    token expiring mid-run (OAuth, rotating refresh token) end with the same tables."""
    from drift_pipeline.drift.authorize import auth_exchange
    from drift_pipeline.settings import Settings

    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000)
    start, end = END - timedelta(days=3), END
    org = simulator.world.org_id
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(tmp_path / "clean"))
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    clean = Settings.from_env()
    _sync(clean, start, end, org_id=org)

    monkeypatch.delenv("DRIFT_ACCESS_TOKEN")
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(home))
    monkeypatch.setenv("DRIFT_CLIENT_ID", simulator.config.client_id)
    monkeypatch.setenv("DRIFT_CLIENT_SECRET", simulator.config.client_secret)
    faulty = Settings.from_env()
    auth_exchange(faulty, simulator.issue_authorization_code())
    simulator.stats.reset()
    faults = simulator.faults
    faults.inject("429", count=4, path="/conversations/list", retry_after=1)
    detail = "/conversations/31"  # detail and message pages, not the list
    faults.inject("500", count=3, path=detail)
    faults.inject("503", count=3, path="/contacts/")
    faults.inject("reset", count=3, path=detail)
    faults.inject("malformed", count=3, path=detail)
    faults.inject("slow", count=2, path=detail, delay=0.3)
    faults.inject("expire_token", count=1, path=detail)
    stats = _sync(faulty, start, end, org_id=org, backoff_base_seconds=0.01, timeout_seconds=5, max_retries=10)
    assert faults.pending == 0, "every injected fault was hit"
    assert stats.responses_429 >= 4
    assert sum(simulator.stats.faults.values()) >= 19
    for table, key in (("raw.conversations", "conversation_id"), ("raw.messages", "conversation_id, message_id"),
                       ("raw.participants", "conversation_id, participant_id, participant_type"),
                       ("raw.contacts", "contact_id"), ("raw.users", "user_id")):
        sql = f"SELECT * EXCLUDE (synced_at) FROM {table} ORDER BY {key}"
        assert _query(faulty, sql) == _query(clean, sql), table
    sql = "SELECT * EXCLUDE (recorded_at) FROM raw.status_events ORDER BY ALL"
    assert _query(faulty, sql) == _query(clean, sql)
    assert _query(faulty, "SELECT success FROM raw.exports") == [(True,)]


def test_a_failed_sync_records_its_error_code_and_the_next_run_resumes(sim_env, monkeypatch):
    from drift_pipeline.drift.errors import DriftAuthError, DriftServerError

    simulator, settings = sim_env
    start, end = END - timedelta(days=3), END
    org = simulator.world.org_id
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", "not-a-valid-token")
    from drift_pipeline.settings import Settings
    with pytest.raises(DriftAuthError):
        _sync(Settings.from_env(), start, end)
    assert _query(settings, "SELECT success, error_code FROM raw.exports") == [(False, "auth")]

    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    settings = Settings.from_env()
    # The second list page fails past every retry: the first page stays committed.
    calls = {"n": 0}
    original = simulator.faults.take

    def fail_after_first_list(path, *, oauth_token):
        if path.startswith("/conversations/list"):
            calls["n"] += 1
            if calls["n"] >= 2:
                simulator.faults.inject("503", count=1, path="/conversations/list")
        return original(path, oauth_token=oauth_token)

    monkeypatch.setattr(simulator.faults, "take", fail_after_first_list)
    with pytest.raises(DriftServerError):
        _sync(settings, start, end, org_id=org, max_retries=2, backoff_base_seconds=0.01)
    failed = _query(settings, "SELECT success, error_code, pages FROM raw.exports WHERE success IS NOT NULL "
                              "AND error_code <> 'auth'")
    assert failed == [(False, "server_error", 1)]
    monkeypatch.setattr(simulator.faults, "take", original)
    stats = _sync(settings, start, end, org_id=org)
    assert stats.resumed_from_job is not None
    assert {r[0] for r in _query(settings, "SELECT conversation_id FROM raw.conversations")} == set(
        _expected_conversations(simulator.world, start - timedelta(hours=1), end))


def test_conversations_reopened_before_the_first_sync_get_drifts_first_close_from_reports(sim_env):
    simulator, settings = sim_env
    world = simulator.world
    start = END - timedelta(days=3)
    simulator.stats.reset()
    stats = _sync(settings, start, END)
    reopened = {cid: world.status_history[cid] for cid in world.conversations
                if sum(1 for status, _ in world.status_history[cid] if status == "closed") >= 1
                and world.status_history[cid][1][1] < world.conversations[cid]["updatedAt"]}
    assert len(reopened) >= 2
    recorded = dict(_query(settings, "SELECT conversation_id, changed_at FROM raw.status_events "
                                     "WHERE source = 'report' AND status = 'closed'"))
    for cid, history in reopened.items():
        assert recorded[cid] == ms_to_ts(history[1][1]), cid  # the first close, not the last
    # Batched by updatedAt range (one call per page of fetched conversations), never per conversation.
    reports = simulator.stats.by_route.get("reports", 0)
    assert 1 <= reports == stats.report_calls <= stats.pages
    assert stats.closes_from_reports == len(recorded)
    # A re-sync of the same window changes nothing and asks no report.
    simulator.stats.reset()
    again = _sync(settings, start, END)
    assert again.report_calls == 0 and simulator.stats.by_route.get("reports", 0) == 0


def test_a_workspace_without_the_reports_endpoint_still_syncs(sim_env):
    simulator, settings = sim_env
    original = simulator.world.conversation_metrics
    simulator.world.conversation_metrics = lambda cid: (_ for _ in ()).throw(KeyError(cid))
    try:
        stats = _sync(settings, END - timedelta(days=1), END)
    finally:
        simulator.world.conversation_metrics = original
    assert stats.conversations_fetched > 0 and stats.report_calls == 0
    assert _query(settings, "SELECT count(*) FROM raw.status_events WHERE source = 'report'") == [(0,)]


def _table_snapshot(settings):
    return {
        "conversations": _query(settings, "SELECT conversation_id, status, updated_at, participant_user_ids "
                                          "FROM raw.conversations ORDER BY 1"),
        "messages": _query(settings, "SELECT conversation_id, message_id, body FROM raw.messages ORDER BY 1, 2"),
        "status_events": _query(settings, "SELECT conversation_id, status, changed_at, source "
                                          "FROM raw.status_events ORDER BY 1, 2, 3"),
    }


@pytest.mark.slow  # several whole syncs through faults
def test_two_early_token_deaths_in_one_sync_end_in_a_clean_complete_run(home, make_simulator, monkeypatch):
    from drift_pipeline.drift.authorize import auth_exchange
    from drift_pipeline.settings import Settings

    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_CLIENT_ID", simulator.config.client_id)
    monkeypatch.setenv("DRIFT_CLIENT_SECRET", simulator.config.client_secret)
    settings = Settings.from_env()
    auth_exchange(settings, simulator.issue_authorization_code())
    # Revoked early twice, with requests in flight: once twice in a row (the refreshed token
    # dies too), once later on.
    simulator.faults.inject("expire_token", 2, skip=30)
    simulator.faults.inject("expire_token", 1, skip=150)
    start = END - timedelta(days=3)
    stats = _sync(settings, start, END)
    assert simulator.stats.faults["expire_token"] == 3
    assert stats.conversations_fetched == len(_expected_conversations(simulator.world, start - timedelta(hours=1), END))
    dirty = _table_snapshot(settings)
    assert _query(settings, "SELECT success, error_code FROM raw.exports") == [(True, None)]

    # The same window synced cleanly into a fresh home holds exactly the same rows.
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(home.parent / "clean"))
    monkeypatch.delenv("DRIFT_CLIENT_ID")
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    clean_settings = Settings.from_env()
    _sync(clean_settings, start, END)
    assert _table_snapshot(clean_settings) == dirty


def test_a_next_link_to_a_foreign_host_is_refused_after_its_page_is_committed(home, make_simulator, monkeypatch):
    from drift_pipeline.drift.errors import DriftBadResponse
    from drift_pipeline.settings import Settings

    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000,
                                       link_host="https://drift.example.org")
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    settings = Settings.from_env()
    start = END - timedelta(days=3)
    for _ in range(2):  # a rerun fails the same clear way, keeping what it stored
        with pytest.raises(DriftBadResponse, match="drift.example.org, which is neither"):
            _sync(settings, start, END)
    stored = _query(settings, "SELECT count(*) FROM raw.conversations")[0][0]
    assert stored == 100  # the first page of 100, committed before its link was refused
    exports = _query(settings, "SELECT success, error_code, pages, page_token_checkpoint FROM raw.exports "
                               "ORDER BY started_at")
    assert [(e[0], e[1]) for e in exports] == [(False, "bad_response")] * 2
    assert exports[0][2] == 1 and exports[0][3].startswith("https://drift.example.org/")
