"""new_meeting and playbook_goal_met webhooks through the receiver, the inbox and the apply
pass (webhooks/apply.py), in Drift's current shapes (whole meeting, ids as numbers) and legacy
ones (a subset naming the slug, ids as numeric strings)."""

from __future__ import annotations

import hashlib

import pytest

from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ms_to_ts
from drift_pipeline.webhooks.apply import apply_inbox

from conftest import SIM_END, deliver, query

END_MS = int(SIM_END.timestamp() * 1000)
DAY_MS = 86_400_000


@pytest.fixture
def hook_env(request, home, make_simulator, monkeypatch):
    simulator, server = make_simulator(seed=11, days=3, conversations_per_day=40, rate_limit_per_minute=60_000,
                                       shapes=getattr(request, "param", "current"))
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    settings = Settings.from_env()
    settings.ensure_dirs()
    return simulator, settings


def files_text(settings: Settings) -> str:
    return "".join(p.read_text() for folder in (settings.inbox_dir, settings.processed_dir, settings.quarantine_dir)
                   for p in folder.glob("*") if p.is_file())


def test_a_whole_new_meeting_is_stored_from_the_payload_and_its_notes_never_reach_a_file(hook_env):
    simulator, settings = hook_env
    world = simulator.world
    conversation_id = min(world.conversations)
    slug, payloads = world.book_meeting(END_MS + 2 * DAY_MS, conversation_id=conversation_id, slug="from-hook",
                                        notes="Prefers Tuesdays, CFO joins", at_ms=END_MS)
    answers = deliver(simulator, settings, payloads)
    assert answers[0]["status"] == "accepted"
    simulator.stats.reset()
    result = apply_inbox(settings)
    assert result.meetings_stored == 1 and simulator.stats.by_route.get("meetings", 0) == 0
    expected_hash = hashlib.sha256(b"test-salt:prefers tuesdays, cfo joins").hexdigest()
    assert query(settings, "SELECT slug, status, conversation_id, slot_start_at, meeting_notes_hash "
                           "FROM raw.meetings") == [
        ("from-hook", "ACTIVE", conversation_id, ms_to_ts(END_MS + 2 * DAY_MS), expected_hash)]
    assert query(settings, "SELECT updated_at, status, source FROM raw.meeting_changes") == [
        (ms_to_ts(END_MS), "ACTIVE", "webhook")]
    assert "CFO" not in files_text(settings)
    assert query(settings, "SELECT count(*) FROM raw.webhook_events WHERE payload LIKE '%CFO%'") == [(0,)]


@pytest.mark.parametrize("hook_env", ["legacy"], indirect=True)
def test_a_subset_new_meeting_fetches_the_meetings_of_its_day(hook_env):
    simulator, settings = hook_env
    world = simulator.world
    slot = END_MS + 5 * DAY_MS + 10 * 3_600_000  # 10:00 UTC five days after the clock
    _, payloads = world.book_meeting(slot, contact_id=min(world.contacts), slug="subset", at_ms=END_MS)
    world.book_meeting(slot + 3_600_000, contact_id=min(world.contacts), slug="same-day", at_ms=END_MS)
    world.book_meeting(slot + DAY_MS, contact_id=min(world.contacts), slug="next-day", at_ms=END_MS)
    assert payloads[0]["data"] == {"slug": "subset", "slotStart": slot, "agentId": world.agent_ids[0]}
    deliver(simulator, settings, payloads)
    simulator.stats.reset()
    apply_inbox(settings)
    assert simulator.stats.by_route["meetings"] == 1
    day = slot - slot % DAY_MS
    expected = {m["slug"] for m in world.served_meetings(day, day + DAY_MS - 1, 1000)}
    assert {"subset", "same-day"} <= expected and "next-day" not in expected
    assert {r[0] for r in query(settings, "SELECT slug FROM raw.meetings")} == expected
    assert query(settings, "SELECT source FROM raw.meeting_changes WHERE slug = 'subset'") == [("poll",)]


def test_a_new_meeting_naming_only_its_slug_fetches_the_window_drift_serves(hook_env):
    simulator, settings = hook_env
    world = simulator.world
    deliver(simulator, settings, [{"type": "new_meeting", "orgId": str(world.org_id), "data": {"slug": "x"}}])
    apply_inbox(settings)
    assert {r[0] for r in query(settings, "SELECT slug FROM raw.meetings")} == \
        {m["slug"] for m in world.served_meetings(0, 10**14, 10**6)}


@pytest.mark.parametrize("hook_env", ["current", "legacy"], indirect=True)
def test_playbook_goal_met_is_kept_once_per_event(hook_env):
    simulator, settings = hook_env
    world = simulator.world
    conversation_id = min(c for c, v in world.conversations.items() if v["relatedPlaybookId"] == 881_001)
    payloads = world.playbook_goal_met(conversation_id)
    deliver(simulator, settings, payloads + payloads)  # Drift retries: the same bytes twice
    partial = {"type": "playbook_goal_met", "orgId": str(world.org_id), "data": {"goalId": "g-1"}}
    deliver(simulator, settings, [partial])
    result = apply_inbox(settings)
    assert result.playbook_goals_met == 2
    goal = world.playbooks[881_001]["goals"][0]["id"]
    rows = query(settings, "SELECT playbook_id, goal_id, conversation_id, contact_id FROM raw.playbook_goals "
                           "ORDER BY goal_id")
    assert sorted(rows, key=str) == sorted([
        (881_001, goal, conversation_id, world.conversations[conversation_id]["contactId"]),
        (None, "g-1", None, None)], key=str)
    assert query(settings, "SELECT count(DISTINCT event_id) FROM raw.playbook_goals") == [(2,)]


@pytest.mark.parametrize("payload, reason", [
    ({"type": "new_meeting", "orgId": "21000001", "data": {"status": "ACTIVE"}}, "data.slug"),
    ({"type": "new_meeting", "orgId": "21000001", "data": {"slug": "m", "slotStart": "soon"}}, "data.slotStart"),
    ({"type": "playbook_goal_met", "orgId": "21000001", "data": {"playbookId": "abc"}}, "data.playbookId"),
    ({"type": "playbook_goal_met", "orgId": "21000001", "data": {}}, "names no playbookId"),
])
def test_bad_meeting_and_goal_payloads_are_quarantined_with_their_reason(hook_env, payload, reason):
    simulator, settings = hook_env
    answers = deliver(simulator, settings, [payload])
    assert answers[0]["status"] == "quarantined" and reason in answers[0]["reason"]
    reasons = [p.read_text() for p in settings.quarantine_dir.glob("*.reason")]
    assert len(reasons) == 1 and reason in reasons[0]


def test_erasing_a_contact_blanks_its_meetings_and_goals_and_later_syncs_keep_them_blank(hook_env):
    import asyncio

    from drift_pipeline.drift.client import DriftClient
    from drift_pipeline.erasure import erase_files, erase_in_warehouse
    from drift_pipeline.ingest.streams import sync_meetings
    from drift_pipeline.warehouse.connection import open_warehouse

    simulator, settings = hook_env
    world = simulator.world
    org = world.org_id
    erased, kept = sorted(world.contacts)[:2]
    _, booked = world.book_meeting(END_MS + DAY_MS, contact_id=erased, slug="erase-me", notes="private", at_ms=END_MS)
    world.book_meeting(END_MS + DAY_MS, contact_id=kept, slug="keep-me", notes="other", at_ms=END_MS)
    goal = {"type": "playbook_goal_met", "orgId": str(org),
            "data": {"playbookId": 881001, "goalId": "g-1", "endUserId": erased}}
    deliver(simulator, settings, booked + [goal])
    apply_inbox(settings)

    def sync():
        async def go():
            async with DriftClient.from_settings(settings) as client:
                with open_warehouse(settings) as conn:
                    await sync_meetings(client, conn, org_id=org, salt=settings.secret("pii_salt"))
        asyncio.run(go())

    sync()
    other_hash = hashlib.sha256(b"test-salt:other").hexdigest()
    with open_warehouse(settings) as conn:
        done = erase_in_warehouse(conn, settings, org_id=org, contact_id=erased, trigger="cli")
    assert [d["contact_id"] for d in done] == [erased]
    expected = [("erase-me", None, None, None), ("keep-me", kept, other_hash, "Europe/Paris")]
    columns = "SELECT slug, scheduler_contact_id, meeting_notes_hash, end_user_time_zone FROM raw.meetings " \
              "WHERE slug IN ('erase-me', 'keep-me') ORDER BY slug"
    assert query(settings, columns) == expected
    assert query(settings, "SELECT contact_id, goal_id FROM raw.playbook_goals") == [(None, "g-1")]
    assert query(settings, "SELECT count(*) FROM raw.webhook_events WHERE payload IS NULL") == [(2,)]
    counts = query(settings, "SELECT counts FROM raw.erasures")[0][0]
    assert '"raw.meetings": 1' in counts and '"raw.playbook_goals.contact_id": 1' in counts
    sync()  # Drift still serves the meeting with its scheduler: it stays erased here
    assert query(settings, columns) == expected
    assert erase_files(settings, {erased}, set(), None, org_id=org) == 2  # the meeting's and the goal's lines
    assert "erase-me" not in files_text(settings)


def test_a_replayed_drift_payload_with_notes_stores_only_their_hash(hook_env):
    import asyncio
    import json

    from drift_pipeline.webhooks.apply import apply_files

    simulator, settings = hook_env
    world = simulator.world
    _, payloads = world.book_meeting(END_MS + DAY_MS, contact_id=min(world.contacts), slug="replayed",
                                     notes="Replay Secret", at_ms=END_MS)
    path = settings.home / "new_meeting.json"
    path.write_text(json.dumps(payloads[0]))
    asyncio.run(apply_files(settings, [path], moving=False))
    assert query(settings, "SELECT meeting_notes_hash FROM raw.meetings WHERE slug = 'replayed'") == [
        (hashlib.sha256(b"test-salt:replay secret").hexdigest(),)]
    (payload,), = query(settings, "SELECT payload FROM raw.webhook_events WHERE event_type = 'new_meeting'")
    assert "Replay Secret" not in payload and "meetingNotesHash" in payload
