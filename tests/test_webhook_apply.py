"""Applying webhook files: once per event, order-proof, quarantine, reopen history, marts refresh."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest

from drift_pipeline.ingest import transform as tf
from drift_pipeline.settings import Settings
from drift_pipeline.webhooks.apply import apply_inbox, apply_inbox_and_refresh
from drift_pipeline.webhooks.inbox import write_events_file

from conftest import SIM_END, query, sync

END = SIM_END.replace(tzinfo=None)


def _home(monkeypatch, path) -> Settings:
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(path))
    settings = Settings.from_env()
    settings.ensure_dirs()
    return settings


def _raw_state(settings):
    return {
        "conversations": query(settings, "SELECT * EXCLUDE (synced_at) FROM raw.conversations ORDER BY conversation_id"),
        "messages": query(settings, "SELECT * EXCLUDE (synced_at) FROM raw.messages ORDER BY conversation_id, message_id"),
        "status_events": query(settings, "SELECT org_id, conversation_id, status, changed_at FROM raw.status_events "
                                         "WHERE source = 'webhook' ORDER BY ALL"),
        "webhook_events": query(settings, "SELECT event_id, event_type, conversation_id, outcome "
                                          "FROM raw.webhook_events ORDER BY event_id"),
    }


def test_events_delivered_three_times_out_of_order_are_applied_once_as_if_in_order(
        sim_env, monkeypatch, tmp_path):
    simulator, _ = sim_env
    start = END - timedelta(days=3)
    in_order = _home(monkeypatch, tmp_path / "in_order")
    sync(in_order, start, END)
    shuffled = _home(monkeypatch, tmp_path / "shuffled")
    sync(shuffled, start, END)

    payloads = simulator.world.advance(minutes=120)
    assert {p["type"] for p in payloads} >= {"new_message", "conversation_status_updated"}
    write_events_file(in_order.inbox_dir, payloads)
    messy = payloads * 3
    random.Random(5).shuffle(messy)
    for chunk in range(0, len(messy), max(1, len(messy) // 4)):
        write_events_file(shuffled.inbox_dir, messy[chunk:chunk + max(1, len(messy) // 4)])

    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(in_order.home))
    first = apply_inbox(in_order)
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(shuffled.home))
    second = apply_inbox(shuffled)
    assert first.events_applied == second.events_applied == len({json.dumps(p, sort_keys=True) for p in payloads})
    assert _raw_state(in_order) == _raw_state(shuffled)
    assert not list(shuffled.inbox_dir.glob("*.json")), "applied files leave the inbox"
    assert len(list(shuffled.processed_dir.glob("*.json"))) >= 4

    # Applying again (e.g. the sensor restarted and re-requested) changes nothing.
    for path in shuffled.processed_dir.glob("*.json"):
        path.rename(shuffled.inbox_dir / path.name)
    again = apply_inbox(shuffled)
    assert again.events_applied == 0 and again.events_duplicate == len(messy)
    assert _raw_state(in_order) == _raw_state(shuffled)


def test_a_malformed_inbox_file_is_quarantined_and_the_good_ones_applied(sim_env, monkeypatch):
    simulator, settings = sim_env
    sync(settings, END - timedelta(days=3), END)
    good = simulator.world.advance(minutes=240)
    assert len(good) >= 2
    write_events_file(settings.inbox_dir, good[: len(good) // 2])
    bad = settings.inbox_dir / "9999999999998-bad.json"
    bad.write_text('{"event_id": "nope", "received_at": 1}\n{not json\n')
    write_events_file(settings.inbox_dir, good[len(good) // 2:])
    result = apply_inbox(settings)
    assert result.files_quarantined == 1 and result.files_applied == 2
    assert (settings.quarantine_dir / bad.name).exists()
    reason = (settings.quarantine_dir / f"{bad.name}.reason").read_text()
    assert reason.strip() and "\n" not in reason.strip()
    assert result.events_applied == len(good)


def test_open_closed_open_closed_gives_one_reopen_and_the_first_close_time(sim_env, monkeypatch):
    simulator, settings = sim_env
    world = simulator.world
    sync(settings, END - timedelta(days=3), END)
    conversation_id = next(cid for cid, c in world.conversations.items() if c["status"] == "open")
    base = world.now_ms
    payloads = []
    payloads += world.set_status(conversation_id, "closed", at_ms=base + 60_000)
    payloads += world.set_status(conversation_id, "open", at_ms=base + 120_000)
    payloads += world.set_status(conversation_id, "closed", at_ms=base + 180_000)
    delivered = list(reversed(payloads)) + payloads  # out of order and twice
    write_events_file(settings.inbox_dir, delivered[:3])
    write_events_file(settings.inbox_dir, delivered[3:])
    result = apply_inbox_and_refresh(settings)
    assert result["events_applied"] == 3 and result["events_duplicate"] == 3
    row = query(settings, "SELECT reopen_count, first_closed_at, status FROM marts.fct_conversations "
                          "WHERE conversation_id = ?", [conversation_id])
    assert row == [(1, tf.ms_to_ts(base + 60_000), "closed")]
    served = query(Settings.from_env({"DRIFT_PIPELINE_HOME": str(settings.home)}),
                   "SELECT count(*) FROM marts.fct_conversations")
    assert served[0][0] > 0


def test_replay_conversation_and_replay_event_are_idempotent(sim_env, tmp_path):
    from drift_pipeline.cli import main
    from drift_pipeline.webhooks.apply import replay_conversations, replay_event_file

    simulator, settings = sim_env
    world = simulator.world
    sync(settings, END - timedelta(days=3), END)
    conversation_id = next(cid for cid, c in world.conversations.items() if c["status"] == "open"
                           and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid]))
    contact_id = world.conversations[conversation_id]["contactId"]
    world.add_message(conversation_id, author_type="contact", author_id=contact_id, at_ms=world.now_ms + 5000)
    status = world.set_status(conversation_id, "closed", at_ms=world.now_ms + 10_000)
    event_file = tmp_path / "status.json"
    event_file.write_text(json.dumps(dict(status[0], token="sim-webhook-token")))  # as Drift sent it

    assert main(["replay", "conversation", str(conversation_id)]) == 0
    replay_conversations(settings, [conversation_id], refresh=False)  # again: nothing changes
    count = query(settings, "SELECT count(*) FROM raw.messages WHERE conversation_id = ?", [conversation_id])
    assert count == [(len(world.messages[conversation_id]),)]
    replay_event_file(settings, event_file, refresh=False)
    assert main(["replay", "event", str(event_file)]) == 0
    assert query(settings, "SELECT status, source FROM raw.status_events WHERE conversation_id = ? "
                           "AND source = 'webhook'", [conversation_id]) == [("closed", "webhook")]
    assert query(settings, "SELECT status FROM marts.fct_conversations WHERE conversation_id = ?",
                 [conversation_id]) == [("closed",)]
    assert main(["replay", "event", str(tmp_path / "missing.json")]) == 2


def test_participant_removed_and_contact_updated_events_refresh_those_rows(sim_env):
    from drift_pipeline.ingest.transform import hash_pii

    simulator, settings = sim_env
    world = simulator.world
    sync(settings, END - timedelta(days=3), END)
    conversation_id = next(cid for cid, c in world.conversations.items() if len(c["participants"]) >= 1
                           and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid]))
    conversation = world.conversations[conversation_id]
    removed = conversation["participants"].pop(0)
    conversation["updatedAt"] = world.now_ms + 1000
    contact_id = conversation["contactId"]
    world.contacts[contact_id]["attributes"]["email"] = "new.address@example.com"
    org = world.org_id
    write_events_file(settings.inbox_dir, [
        {"type": "conversation_participant_removed", "orgId": org,
         "data": {"conversationId": conversation_id, "removedParticipants": [removed], "changedAt": world.now_ms + 1000}},
        {"type": "contact_updated", "orgId": org, "data": {"id": contact_id, "attributes": {"email": "x"}}},
    ])
    result = apply_inbox(settings)
    assert result.events_applied == 2 and result.contacts_refetched == 1
    assert query(settings, "SELECT is_current FROM raw.participants WHERE conversation_id = ? AND participant_id = ? "
                           "AND participant_type = 'user'", [conversation_id, removed]) == [(False,)]
    assert query(settings, "SELECT email_hash FROM raw.contacts WHERE contact_id = ?", [contact_id]) == [
        (hash_pii("new.address@example.com", "test-salt"),)]
