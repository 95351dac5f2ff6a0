"""Meetings, playbooks and accounts: the simulator's answers into raw.*, by hand-computed
expectations (see ingest/streams.py)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

import pytest

from drift_pipeline.drift.client import DriftClient
from drift_pipeline.drift.errors import DriftMissingScope
from drift_pipeline.ingest.streams import sync_accounts, sync_meetings, sync_playbooks
from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ms_to_ts
from drift_pipeline.warehouse.connection import open_warehouse

from conftest import SIM_END, query

END = SIM_END.replace(tzinfo=None)
END_MS = int(SIM_END.timestamp() * 1000)
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
MEETING_COLUMNS = ("slug, status, meeting_source, meeting_type, agent_user_id, scheduler_contact_id, conversation_id, "
                   "booked_by_user_id, slot_start_at, slot_end_at, scheduled_at, updated_at, end_user_time_zone, "
                   "meeting_notes_hash")


@pytest.fixture
def stream_env(request, home, make_simulator, monkeypatch):
    options = getattr(request, "param", {})
    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000,
                                       **options)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    settings = Settings.from_env()
    settings.ensure_dirs()
    return simulator, settings


def run_stream(settings, sync, **options):
    async def go():
        async with DriftClient.from_settings(settings) as client:
            with open_warehouse(settings) as conn:
                return await sync(client, conn, org_id=21000001, **options)
    return asyncio.run(go())


def sync_meetings_now(settings):
    return run_stream(settings, sync_meetings, salt=settings.secret("pii_salt"))


def notes_hash(text: str) -> str:
    # The project's PII hash, computed here by hand: sha256 of "salt:lower-cased text".
    return hashlib.sha256(f"test-salt:{text.strip().lower()}".encode()).hexdigest()


def test_a_sync_stores_exactly_the_meetings_drift_serves(stream_env):
    simulator, settings = stream_env
    world = simulator.world
    served = world.served_meetings(0, 10**14, 10**6)
    assert served and len(served) < len(world.meetings) + 1
    stats = sync_meetings_now(settings)
    assert stats.listed == len(served) and stats.api_calls == 2  # our clock, then Drift's window
    stored = {r[0]: r[1:] for r in query(settings, f"SELECT {MEETING_COLUMNS} FROM raw.meetings")}
    assert set(stored) == {m["slug"] for m in served}
    for m in served:
        assert stored[m["slug"]] == (
            m["status"], m["meetingSource"], m["meetingType"], m["agentId"], m["schedulerId"],
            m.get("conversationId"), m.get("bookedBy"), ms_to_ts(m["slotStart"]), ms_to_ts(m["slotEnd"]),
            ms_to_ts(m["scheduledAt"]), ms_to_ts(m["updatedAt"]), m["endUserTimeZone"],
            notes_hash(m["meetingNotes"]) if "meetingNotes" in m else None)
    assert any(m.get("conversationId") is None for m in served), "some meetings were booked outside chat"
    # A run reads the playbooks first: their answer states Drift's clock, and the meetings
    # window costs one call.
    async def run():
        async with DriftClient.from_settings(settings) as client:
            with open_warehouse(settings) as conn:
                await sync_playbooks(client, conn, org_id=21000001)
                return await sync_meetings(client, conn, org_id=21000001, salt="test-salt")
    assert asyncio.run(run()).api_calls == 1


def test_a_meeting_cancelled_then_rebooked_keeps_each_observed_state(stream_env):
    simulator, settings = stream_env
    world = simulator.world
    conversation_id = min(world.conversations)
    slot = END_MS + 3 * DAY_MS
    slug, _ = world.book_meeting(slot, conversation_id=conversation_id, slug="cancel-rebook", at_ms=END_MS)
    sync_meetings_now(settings)
    world.cancel_meeting(slug, at_ms=END_MS + HOUR_MS)
    sync_meetings_now(settings)
    world.rebook_meeting(slug, at_ms=END_MS + 2 * HOUR_MS)
    sync_meetings_now(settings)
    sync_meetings_now(settings)  # nothing changed: nothing added
    changes = query(settings, "SELECT updated_at, status, slot_start_at, source FROM raw.meeting_changes "
                              "WHERE slug = 'cancel-rebook' ORDER BY updated_at")
    slot_at = datetime(2026, 11, 18)
    assert changes == [(END, "ACTIVE", slot_at, "poll"),
                       (END + timedelta(hours=1), "CANCELED", slot_at, "poll"),
                       (END + timedelta(hours=2), "ACTIVE", slot_at, "poll")]
    assert query(settings, "SELECT status, updated_at, scheduled_at, conversation_id FROM raw.meetings "
                           "WHERE slug = 'cancel-rebook'") == [("ACTIVE", END + timedelta(hours=2), END, conversation_id)]


def test_a_reschedule_moves_the_slot_and_is_recorded(stream_env):
    simulator, settings = stream_env
    world = simulator.world
    contact = min(world.contacts)
    world.book_meeting(END_MS + DAY_MS, contact_id=contact, slug="moved", at_ms=END_MS)
    sync_meetings_now(settings)
    world.reschedule_meeting("moved", END_MS + 2 * DAY_MS, at_ms=END_MS + 30 * 60_000)
    sync_meetings_now(settings)
    assert query(settings, "SELECT updated_at, status, slot_start_at FROM raw.meeting_changes WHERE slug = 'moved' "
                           "ORDER BY updated_at") == [
        (END, "ACTIVE", END + timedelta(days=1)),
        (END + timedelta(minutes=30), "ACTIVE", END + timedelta(days=2))]
    assert query(settings, "SELECT slot_start_at, slot_end_at FROM raw.meetings WHERE slug = 'moved'") == [
        (END + timedelta(days=2), END + timedelta(days=2, minutes=30))]


def test_a_meeting_without_a_conversation_and_its_notes_only_hashed(stream_env):
    simulator, settings = stream_env
    world = simulator.world
    contact = min(world.contacts)
    world.book_meeting(END_MS + DAY_MS, contact_id=contact, slug="email-drop", notes="Call me on +1 555 0100",
                       at_ms=END_MS)
    sync_meetings_now(settings)
    assert query(settings, "SELECT conversation_id, scheduler_contact_id, meeting_source, meeting_notes_hash "
                           "FROM raw.meetings WHERE slug = 'email-drop'") == [
        (None, contact, "EMAIL_DROP", notes_hash("Call me on +1 555 0100"))]
    everything = str(query(settings, "SELECT * FROM raw.meetings")) + str(query(settings, "SELECT * FROM raw.meeting_changes"))
    assert "555 0100" not in everything


def test_a_late_older_state_does_not_overwrite_a_newer_one(stream_env):
    from drift_pipeline.ingest.streams import store_meetings

    simulator, settings = stream_env
    newer = {"slug": "s1", "status": "CANCELED", "slotStart": END_MS, "updatedAt": END_MS + 2000}
    older = {"slug": "s1", "status": "ACTIVE", "slotStart": END_MS, "updatedAt": END_MS + 1000}
    with open_warehouse(settings) as conn:
        store_meetings(conn, 7, [newer], salt="test-salt", source="poll")
        store_meetings(conn, 7, [older], salt="test-salt", source="webhook")
    assert query(settings, "SELECT status FROM raw.meetings") == [("CANCELED",)]
    assert query(settings, "SELECT status, source FROM raw.meeting_changes ORDER BY updated_at") == [
        ("ACTIVE", "webhook"), ("CANCELED", "poll")]


def test_playbooks_disabled_before_the_first_sync_are_never_listed_and_renames_follow(stream_env):
    simulator, settings = stream_env
    world = simulator.world
    first = run_stream(settings, sync_playbooks)
    assert first.listed == 3
    listed = query(settings, "SELECT playbook_id, name, currently_listed, first_seen_at = last_listed_at "
                             "FROM raw.playbooks ORDER BY 1")
    assert listed == [(881001, "Book a demo", True, True), (881002, "Pricing page concierge", True, True),
                      (881004, "Support triage", True, True)]  # 881003 was disabled before: never seen
    # Goals: 1 for the first playbook, 2 for the second, 2 for the fourth.
    assert query(settings, "SELECT playbook_id, count(*) FROM raw.playbook_goals_defined GROUP BY 1 ORDER BY 1") == [
        (881001, 1), (881002, 2), (881004, 2)]
    (first_seen,), = query(settings, "SELECT first_seen_at FROM raw.playbooks WHERE playbook_id = 881002")
    world.rename_playbook(881001, "Book a demo (EMEA)")
    world.set_playbook_enabled(881002, False)
    run_stream(settings, sync_playbooks)
    after = {r[0]: r[1:] for r in query(settings, "SELECT playbook_id, name, currently_listed, first_seen_at, "
                                                  "last_listed_at FROM raw.playbooks")}
    assert after[881001][:2] == ("Book a demo (EMEA)", True)
    assert after[881002] == ("Pricing page concierge", False, first_seen, first_seen)  # kept, not listed now
    assert after[881001][2] == first_seen and after[881001][3] > first_seen
    assert 881003 not in after
    world.set_playbook_enabled(881002, True)
    run_stream(settings, sync_playbooks)
    assert query(settings, "SELECT currently_listed, first_seen_at FROM raw.playbooks WHERE playbook_id = 881002") == [
        (True, first_seen)]


@pytest.mark.parametrize("stream_env", [{"shapes": "current"}, {"shapes": "legacy"}], indirect=True)
def test_accounts_are_paged_and_deleted_ones_kept(stream_env):
    simulator, settings = stream_env
    world = simulator.world

    async def pages():
        async with DriftClient.from_settings(settings) as client:
            return [len(page.items) async for page in client.iter_account_pages(size=3)]

    assert asyncio.run(pages()) == [3, 3, 2]
    world.delete_account("123450_acme.example")
    stats = run_stream(settings, sync_accounts)
    assert stats.listed == 8 and stats.api_calls == 1
    rows = query(settings, "SELECT account_id, deleted, owner_user_id FROM raw.accounts ORDER BY 1")
    assert len(rows) == 8
    # Deleted: the two generated as deleted (index 2 and 5) and the one deleted above.
    assert [r[0] for r in rows if r[1]] == ["123450_acme.example", "123452_initech.example", "123455_vandelay.example"]
    assert rows[0][2] == world.agent_ids[0]


@pytest.mark.parametrize("stream_env", [{"missing_scopes": {"playbook_read"}}], indirect=True)
def test_a_missing_scope_raises_an_error_naming_it(stream_env):
    simulator, settings = stream_env
    with pytest.raises(DriftMissingScope, match="playbook_read") as caught:
        run_stream(settings, sync_playbooks)
    assert caught.value.scope == "playbook_read" and caught.value.status == 403
    assert run_stream(settings, sync_accounts).listed == 8  # the other scopes still work


@pytest.mark.parametrize("stream_env", [{"missing_scopes": {"playbook_read"}}], indirect=True)
def test_a_run_without_playbook_read_succeeds_and_its_check_names_the_scope(stream_env):
    from dagster import AssetKey

    from conftest import run_days

    simulator, settings = stream_env
    result = run_days(settings, END.date() - timedelta(days=1), END.date(), with_dbt=False)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    refused = evaluations["playbooks_scope_granted"]
    assert refused.passed is False and refused.asset_key == AssetKey(["raw", "playbooks"])
    assert refused.description == "missing scope playbook_read: playbooks not read for org(s) 21000001"
    assert refused.metadata["missing_scope"].value == "playbook_read"
    assert evaluations["meetings_scope_granted"].passed and evaluations["accounts_scope_granted"].passed
    assert query(settings, "SELECT count(*) FROM raw.playbooks") == [(0,)]
    # The rest of the run went on: conversations, meetings and accounts are in.
    assert query(settings, "SELECT count(*) > 0 FROM raw.conversations") == [(True,)]
    assert query(settings, "SELECT count(*) FROM raw.meetings") == [(len(simulator.world.served_meetings(0, 10**14, 10**6)),)]
    assert query(settings, "SELECT count(*) FROM raw.accounts") == [(8,)]


def test_sixty_days_of_daily_syncs_keep_the_meetings_drift_stopped_serving(home, make_simulator, monkeypatch):
    """The clock moves 60 days, a sync runs every day: every meeting Drift ever served is in
    raw.meetings as Drift last served it, including those whose slot is now more than 30 days
    old (Drift no longer returns them)."""
    simulator, server = make_simulator(seed=3, days=2, conversations_per_day=8, rate_limit_per_minute=60_000)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    settings = Settings.from_env()
    settings.ensure_dirs()
    world = simulator.world
    last_served: dict[str, dict] = {}
    for _ in range(60):
        world.advance(24 * 60)
        for meeting in world.served_meetings(0, 10**14, 10**6):
            last_served[meeting["slug"]] = meeting
        sync_meetings_now(settings)
    assert world.now_ms == END_MS + 60 * DAY_MS
    stored = {r[0]: r[1:] for r in query(settings, "SELECT slug, status, slot_start_at, updated_at, conversation_id "
                                                   "FROM raw.meetings")}
    assert set(stored) == set(last_served)
    for slug, m in last_served.items():
        assert stored[slug] == (m["status"], ms_to_ts(m["slotStart"]), ms_to_ts(m["updatedAt"]), m.get("conversationId"))
    served_now = {m["slug"] for m in world.served_meetings(0, 10**14, 10**6)}
    gone = [slug for slug, m in last_served.items() if m["slotStart"] < world.now_ms - 30 * DAY_MS]
    assert len(gone) >= 10 and not served_now & set(gone)
    # Each meeting's last served state is among its recorded changes.
    changes = set(query(settings, "SELECT slug, updated_at, status FROM raw.meeting_changes"))
    assert {(slug, ms_to_ts(m["updatedAt"]), m["status"]) for slug, m in last_served.items()} <= changes
    assert any(m["status"] == "CANCELED" for m in last_served.values())


def test_retention_drops_the_notes_hash_of_meetings_booked_before_its_cutoff(stream_env):
    from drift_pipeline.ingest.streams import store_meetings
    from drift_pipeline.retention import run_retention

    simulator, settings = stream_env
    old = {"slug": "old", "status": "ACTIVE", "scheduledAt": END_MS - 40 * DAY_MS, "updatedAt": END_MS - 40 * DAY_MS,
           "slotStart": END_MS - 39 * DAY_MS, "meetingNotes": "old notes"}
    new = {**old, "slug": "new", "scheduledAt": END_MS - 5 * DAY_MS, "updatedAt": END_MS - 5 * DAY_MS,
           "meetingNotes": "new notes"}
    with open_warehouse(settings) as conn:
        store_meetings(conn, 7, [old, new], salt="test-salt", source="poll")
    result = run_retention(settings, 30, trigger="cli", now=END)
    assert result["counts"]["raw.meetings.meeting_notes_hash"] == 1
    assert query(settings, "SELECT slug, meeting_notes_hash FROM raw.meetings ORDER BY slug") == [
        ("new", notes_hash("new notes")), ("old", None)]


@pytest.mark.parametrize("order, calls", [("ascending", 3), ("descending", None)])
def test_meetings_past_the_cap_of_1000_a_call_are_all_read(order, calls):
    """2,500 meetings, one a minute: in slot order the answer is continued from its last slot
    (1000, 1000 with the boundary again, 502: three calls, the minimum); in another order the
    range is halved until no answer is full."""
    import httpx

    meetings = [{"slug": f"m{i:04d}", "slotStart": 1_000_000 + i * 60_000} for i in range(2500)]
    asked = []

    def answer(request: httpx.Request) -> httpx.Response:
        low, high = int(request.url.params["min_start_time"]), int(request.url.params["max_start_time"])
        limit = int(request.url.params["limit"])
        found = [m for m in meetings if low <= m["slotStart"] <= high]
        found.sort(key=lambda m: m["slotStart"], reverse=order == "descending")
        asked.append((low, high))
        return httpx.Response(200, json={"data": found[:limit]})

    async def go():
        async with DriftClient("https://driftapi.com", access_token="t", transport=httpx.MockTransport(answer),
                               rate_limit_per_minute=10**6) as client:
            return await client.get_meetings(0, 10**12)

    read = asyncio.run(go())
    assert sorted(m["slug"] for m in read) == [m["slug"] for m in meetings]
    if calls is not None:
        assert len(asked) == calls
        assert asked[1][0] == meetings[999]["slotStart"] and asked[2][0] == meetings[1998]["slotStart"]
