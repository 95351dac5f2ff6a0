"""Applying webhook files: once per event, order-proof, quarantine, reopen history, marts refresh.

Tests of the apply path run against the simulator in both of Drift's documented shapes
(`both_shapes`): the current ones (token in the header only, `orgId` as a string, no
`changedAt`, contacts as `endUserId`) and the legacy ones (body token, integer `orgId`,
`changedAt`, `contactId`). Deliveries go through the real receiver (`deliver`).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta

import pytest

from drift_pipeline.operations import replay_conversations, replay_event_file
from drift_pipeline.runner import apply_inbox_and_refresh, refresh_marts
from drift_pipeline.pii import hash_pii
from drift_pipeline.settings import Settings
from drift_pipeline.timeutil import ms_to_ts
from drift_pipeline.webhooks.apply import apply_inbox
from drift_pipeline.webhooks.inbox_files import (
    inbox_record,
    iter_inbox_files,
    read_inbox_file,
    write_events_file,
)

from conftest import SIM_END, deliver, query

END = SIM_END.replace(tzinfo=None)


# Runs a test with the simulator in each of Drift's documented shapes (conftest's `sim_env`).
both_shapes = pytest.mark.parametrize("sim_env", ["current", "legacy"], indirect=True)


def received_records(settings: Settings) -> list[dict]:
    """Every stored inbox record, waiting or applied."""
    paths = iter_inbox_files(settings.inbox_dir) + iter_inbox_files(settings.processed_dir)
    return [record for path in paths for record in read_inbox_file(path)]


def synced_conversation(world, settings, predicate=lambda c: True) -> int:
    return next(cid for cid, c in world.conversations.items() if predicate(c)
                and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid]))


def synced_open_conversation(sim_env, synced):
    """Three days synced; the simulator, the settings, the world and an open conversation in raw."""
    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
    world = simulator.world
    return simulator, settings, world, synced_conversation(world, settings, lambda c: c["status"] == "open")


def _home(monkeypatch, path) -> Settings:
    monkeypatch.setenv("DRIFT_PIPELINE_HOME", str(path))
    settings = Settings.from_env()
    settings.ensure_dirs()
    return settings


def _raw_state(settings):
    return {
        "conversations": query(settings, "SELECT * EXCLUDE (synced_at) FROM raw.conversations ORDER BY conversation_id"),
        "messages": query(settings, "SELECT * EXCLUDE (synced_at) FROM raw.messages ORDER BY conversation_id, message_id"),
        # Every source: a webhook close and the poll or report row of the same change share a key,
        # and which of them names the source depends on the order the rows were applied.
        "status_events": query(settings, "SELECT org_id, conversation_id, status, changed_at FROM raw.status_events "
                                         "ORDER BY ALL"),
        "webhook_events": query(settings, "SELECT event_id, event_type, conversation_id, outcome "
                                          "FROM raw.webhook_events ORDER BY event_id"),
    }


@both_shapes
def test_events_delivered_three_times_out_of_order_are_applied_once_as_if_in_order(
        sim_env, synced, monkeypatch, tmp_path):
    simulator, _ = sim_env
    start = END - timedelta(days=3)
    in_order = _home(monkeypatch, tmp_path / "in_order")
    synced(simulator, in_order, start, END)
    shuffled = _home(monkeypatch, tmp_path / "shuffled")
    synced(simulator, shuffled, start, END)

    payloads = simulator.world.advance(minutes=120)
    assert {p["type"] for p in payloads} >= {"new_message", "conversation_status_updated"}
    # Stamped as the receiver stamps them: at the first delivery (later ones are duplicates
    # there), which is the time an event without changedAt counts from.
    first_received = 1_800_000_000_000
    records = [inbox_record(p, first_received + n) for n, p in enumerate(payloads)]
    write_events_file(in_order.inbox_dir, records)
    messy = records * 3
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


def test_a_malformed_inbox_file_is_quarantined_and_the_good_ones_applied(sim_env, synced, monkeypatch):
    simulator, settings = sim_env
    synced(simulator, settings, END - timedelta(days=3), END)
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


# Legacy shapes: the events carry changedAt, so even reversed deliveries order exactly (without
# it they count from their arrival: test_status_events_without_changed_at_*).
@pytest.mark.parametrize("sim_env", ["legacy"], indirect=True)
def test_open_closed_open_closed_gives_one_reopen_and_the_first_close_time(sim_env, synced, monkeypatch):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
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
    assert row == [(1, ms_to_ts(base + 60_000), "closed")]
    # ... and the republished serving copy holds the same row.
    import duckdb

    with duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True) as served:
        assert served.execute("SELECT reopen_count, first_closed_at, status FROM marts.fct_conversations "
                              "WHERE conversation_id = ?", [conversation_id]).fetchall() == row


def test_replay_conversation_and_replay_event_are_idempotent(sim_env, synced, tmp_path):
    from drift_pipeline.cli import main

    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
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


def test_participant_removed_and_contact_updated_events_refresh_those_rows(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
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


# --- Drift's documented shapes, through the receiver ---------------------------------------------

@both_shapes
def test_deliveries_authenticated_as_drift_sends_them_are_applied_to_the_warehouse(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    payloads = world.advance(minutes=180)
    if world.config.shapes == "current":
        assert all("token" not in p and isinstance(p["orgId"], str) for p in payloads)
    answers = deliver(simulator, settings, payloads)
    assert {answer["status"] for answer in answers} <= {"accepted", "duplicate"}

    result = apply_inbox(settings)
    assert result.events_applied == len({a["event_id"] for a in answers})
    assert result.events_invalid == 0 and result.files_quarantined == 0
    touched = {p["data"]["conversationId"] for p in payloads if "conversationId" in p["data"]}
    stored = dict(query(settings, "SELECT conversation_id, status FROM raw.conversations "
                                  "WHERE conversation_id IN (SELECT unnest(?::BIGINT[]))", [sorted(touched)]))
    assert stored == {cid: world.conversations[cid]["status"] for cid in touched}
    closes = {(p["data"]["conversationId"], p["data"]["status"]) for p in payloads
              if p["type"] == "conversation_status_updated"}
    assert set(query(settings, "SELECT conversation_id, status FROM raw.status_events "
                               "WHERE source = 'webhook'")) == closes
    assert query(settings, "SELECT DISTINCT org_id FROM raw.webhook_events") == [(world.org_id,)]


@both_shapes
def test_status_events_without_changed_at_count_from_the_time_received(sim_env, synced):
    simulator, settings, world, conversation_id = synced_open_conversation(sim_env, synced)
    base = world.now_ms
    payloads = (world.set_status(conversation_id, "closed", at_ms=base + 60_000)
                + world.set_status(conversation_id, "open", at_ms=base + 120_000))
    deliver(simulator, settings, payloads, spacing_s=0.01)  # in order, each its own millisecond
    received = sorted(r["received_at"] for r in received_records(settings))

    result = apply_inbox_and_refresh(settings)
    assert result["events_applied"] == 2
    changes = set(query(settings, "SELECT status, changed_at FROM raw.status_events WHERE conversation_id = ?",
                        [conversation_id]))
    # Current shapes send no changedAt: the receiver's clock stands in.
    expected_ms = received if world.config.shapes == "current" else [base + 60_000, base + 120_000]
    assert {("closed", ms_to_ts(expected_ms[0])), ("open", ms_to_ts(expected_ms[1]))} <= changes
    # The refetch also asks Drift's reports for the first close, so it stays exact either way.
    row = query(settings, "SELECT reopen_count, first_closed_at, status FROM marts.fct_conversations "
                          "WHERE conversation_id = ?", [conversation_id])
    assert row == [(1, ms_to_ts(base + 60_000), "open")]


@both_shapes
def test_an_upper_case_status_with_a_string_org_id_is_applied_in_lower_case(sim_env, synced):
    simulator, settings, world, conversation_id = synced_open_conversation(sim_env, synced)
    [payload] = world.set_status(conversation_id, "closed", at_ms=world.now_ms + 60_000)
    shouted = {**payload, "orgId": str(world.org_id),
               "data": {**payload["data"], "status": "CLOSED"}}
    assert deliver(simulator, settings, [shouted])[0]["status"] == "accepted"
    assert apply_inbox(settings).events_applied == 1
    assert query(settings, "SELECT org_id, status FROM raw.status_events WHERE conversation_id = ? "
                           "AND source = 'webhook'", [conversation_id]) == [(world.org_id, "closed")]


@both_shapes
def test_an_authenticated_unusable_event_is_quarantined_with_its_reason_and_replays_once_fixed(
        sim_env, synced):
    from drift_pipeline.cli import main

    simulator, settings, world, conversation_id = synced_open_conversation(sim_env, synced)
    [payload] = world.set_status(conversation_id, "closed", at_ms=world.now_ms + 60_000)
    unusable = {**payload, "data": {**payload["data"], "status": "archived"}}

    [answer] = deliver(simulator, settings, [unusable])
    assert answer["status"] == "quarantined" and "status" in answer["reason"]
    [kept] = settings.quarantine_dir.glob("*.json")
    reason = (settings.quarantine_dir / f"{kept.name}.reason").read_text()
    assert reason.strip() == answer["reason"]
    assert simulator.config.webhook_token not in kept.read_text()
    assert apply_inbox(settings).events_applied == 0  # nothing went to the inbox

    # Replaying it as it is says why, in one line, and changes nothing.
    assert main(["replay", "event", str(kept)]) == 2
    assert query(settings, "SELECT count(*) FROM raw.status_events WHERE conversation_id = ? "
                           "AND source = 'webhook'", [conversation_id]) == [(0,)]
    # Once the cause is fixed (here by hand), the same file replays into the warehouse, twice
    # to no further effect (the CLI would then refresh the marts, as test_replay_* shows).
    record = json.loads(kept.read_text())
    record["payload"]["data"]["status"] = "closed"
    kept.write_text(json.dumps(record) + "\n")
    for _ in range(2):
        replayed = replay_event_file(settings, kept, refresh=False)
        assert replayed["events_applied"] == 1
    assert query(settings, "SELECT status FROM raw.status_events WHERE conversation_id = ? "
                           "AND source = 'webhook'", [conversation_id]) == [("closed",)]
    assert query(settings, "SELECT status FROM raw.conversations WHERE conversation_id = ?",
                 [conversation_id]) == [("closed",)]


# --- contacts ------------------------------------------------------------------------------------

@both_shapes
def test_contact_updated_with_a_diff_by_end_user_id_refetches_the_contact(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    contact_id = query(settings, "SELECT min(contact_id) FROM raw.contacts")[0][0]
    payloads = world.update_contact(contact_id, at_ms=world.now_ms + 1000, email="moved@example.com")
    named = "endUserId" if world.config.shapes == "current" else "contactId"
    assert payloads[0]["data"][named] == contact_id and payloads[0]["data"]["diff"]
    payloads += world.identify_contact(contact_id)
    deliver(simulator, settings, payloads)
    result = apply_inbox(settings)
    assert result.events_applied == 2 and result.contacts_refetched >= 1
    assert query(settings, "SELECT email_hash FROM raw.contacts WHERE contact_id = ?", [contact_id]) == [
        (hash_pii("moved@example.com", "test-salt"),)]


@both_shapes
def test_a_contact_event_naming_only_an_email_looks_the_contact_up(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    contact_id = query(settings, "SELECT min(contact_id) FROM raw.contacts")[0][0]
    payloads = world.update_contact(contact_id, at_ms=world.now_ms + 1000, by_email=True,
                                    externalId="crm-moved-1")
    assert "endUserId" not in payloads[0]["data"] or "@" in payloads[0]["data"]["endUserId"]
    deliver(simulator, settings, payloads)
    result = apply_inbox(settings)
    assert result.events_applied == 1 and result.contacts_refetched == 1
    assert query(settings, "SELECT external_id_hash FROM raw.contacts WHERE contact_id = ?", [contact_id]) == [
        (hash_pii("crm-moved-1", "test-salt"),)]


@pytest.mark.slow
@pytest.mark.parametrize("sim_env, by_email", [("current", False), ("legacy", False), ("current", True)],
                         ids=["current-by_id", "legacy-by_id", "current-by_email"], indirect=["sim_env"])
def test_a_gdpr_request_by_end_user_id_erases_the_contact_from_warehouse_files_and_serving_copy(
        sim_env, synced, by_email):
    import duckdb

    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    stored = {r[0] for r in query(settings, "SELECT contact_id FROM raw.contacts")}
    conversation_id = synced_conversation(
        world, settings, lambda c: c["contactId"] in stored and c["status"] == "open")
    contact_id = world.conversations[conversation_id]["contactId"]
    email = world.contacts[contact_id]["attributes"]["email"]
    # The contact wrote again (applied: its file is in processed/), then asked to be forgotten.
    deliver(simulator, settings, world.add_message(conversation_id, author_type="contact",
                                                   body=f"<p>write to {email}</p>"))
    apply_inbox(settings)
    assert query(settings, "SELECT count(*) FROM raw.conversations WHERE contact_id = ?",
                 [contact_id]) != [(0,)]

    request = world.request_gdpr_delete(contact_id, by_email=by_email)
    if world.config.shapes == "current":
        assert request[0]["data"] == {"endUserId": email if by_email else contact_id}
    deliver(simulator, settings, request)
    result = apply_inbox_and_refresh(settings)
    assert result["contacts_erased"] == 1 and result["file_lines_erased"] >= 2

    assert query(settings, "SELECT count(*) FROM raw.contacts WHERE contact_id = ?", [contact_id]) == [(0,)]
    assert query(settings, "SELECT count(*) FROM raw.conversations WHERE contact_id = ?", [contact_id]) == [(0,)]
    assert query(settings, "SELECT count(body) FROM raw.messages WHERE conversation_id = ?",
                 [conversation_id]) == [(0,)]
    assert query(settings, "SELECT count(*) FROM raw.webhook_events WHERE payload LIKE ?",
                 [f"%{email}%"]) == [(0,)]
    for folder in (settings.inbox_dir, settings.processed_dir, settings.quarantine_dir):
        for path in folder.glob("*.json"):
            text = path.read_text()
            assert email not in text and str(conversation_id) not in text and str(contact_id) not in text
    serving = duckdb.connect(str(settings.serving_dir / "analytics.duckdb"), read_only=True)
    try:
        assert serving.execute("SELECT count(*) FROM marts.fct_conversations WHERE contact_id = ?",
                               [contact_id]).fetchall() == [(0,)]
        assert serving.execute("SELECT count(*) FROM marts.fct_conversations WHERE conversation_id = ?",
                               [conversation_id]).fetchall() == [(1,)]
    finally:
        serving.close()


# --- one pass over the backlog ---------------------------------------------------------------

def _calls(simulator) -> Counter:
    """(route, path) -> requests, from the simulator's request log (queries dropped: every
    page of a conversation's messages counts under its path)."""
    return Counter((route, target.split("?")[0]) for route, _, target, _ in simulator.stats.request_log())


@both_shapes
def test_fifty_events_over_five_conversations_in_ten_files_fetch_each_conversation_once(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    chosen = [cid for cid, c in world.conversations.items() if c["status"] == "open"
              and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid])][:5]
    assert len(chosen) == 5
    # Forty messages on four conversations; nine and a close on the fifth (a change the
    # payloads do not date in the current shapes: its message pages tell what happened).
    at = world.now_ms
    by_conversation = {}
    for n, cid in enumerate(chosen):
        payloads = []
        for i in range(10 if n < 4 else 9):
            at += 1000
            payloads += world.add_message(cid, author_type="contact" if i % 2 == 0 else "user",
                                          author_id=None, at_ms=at)
        if n == 4:
            at += 1000
            payloads += world.set_status(cid, "closed", at_ms=at)
        by_conversation[cid] = payloads
    # Agents join by replying (participant_added): keep exactly fifty events, ten per conversation.
    events = [p for payloads in by_conversation.values()
              for p in [p for p in payloads if p["type"] != "conversation_participant_added"]]
    assert len(events) == 50
    files = [events[i::10] for i in range(10)]  # every file touches all five conversations
    for chunk in files:
        write_events_file(settings.inbox_dir, chunk)
    simulator.stats.reset()

    result = apply_inbox(settings)
    assert result.files_applied == 10 and result.events_applied == 50
    calls = _calls(simulator)
    details = {path: n for (route, path), n in calls.items() if route == "detail"}
    assert details == {f"/conversations/{cid}": 1 for cid in chosen}
    pages = Counter()
    for (route, path), n in calls.items():
        if route == "messages":
            pages[int(path.split("/")[2])] += n
    message_only, closed = chosen[:4], chosen[4]
    assert all(pages[cid] == 0 for cid in message_only), "complete new_message payloads need no page"
    assert pages[closed] <= -(-len(world.messages[closed]) // 50)
    assert set(route for route, _ in calls) <= {"detail", "messages", "reports"}
    assert calls[("reports", "/reports/conversations")] <= 1
    assert result.api_calls.get("detail") == 5
    assert result.conversations_refetched == 5 and result.conversations_from_payloads >= 4

    # What the pass stored is exactly what Drift holds.
    for cid in chosen:
        stored = query(settings, "SELECT message_id, created_at, author_type, body FROM raw.messages "
                                 "WHERE conversation_id = ? ORDER BY message_id", [cid])
        assert stored == [(m["id"], ms_to_ts(m["createdAt"]), m["author"]["type"], m["body"])
                          for m in sorted(world.messages[cid], key=lambda m: m["id"])]
        assert query(settings, "SELECT status, updated_at FROM raw.conversations WHERE conversation_id = ?",
                     [cid]) == [(world.conversations[cid]["status"],
                                 ms_to_ts(world.conversations[cid]["updatedAt"]))]


def test_an_edit_of_a_message_not_stored_fetches_the_pages(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    cid = synced_conversation(world, settings, lambda c: c["status"] == "open")
    # A message whose webhook never arrived, then an edit of it that did.
    lost = world.add_message(cid, author_type="contact", at_ms=world.now_ms + 1000)
    [lost_message] = [p["data"] for p in lost if p["type"] == "new_message"]
    edit = world.add_message(cid, author_type="contact", type="edit", body="<p>fixed</p>",
                             edited_message_id=lost_message["id"], edit_type="replace_body",
                             at_ms=world.now_ms + 2000)
    write_events_file(settings.inbox_dir, [p for p in edit if p["type"] == "new_message"])
    simulator.stats.reset()
    result = apply_inbox(settings)
    assert result.events_applied == 1 and result.conversations_from_payloads == 0
    assert _calls(simulator)[("messages", f"/conversations/{cid}/messages")] >= 1
    assert query(settings, "SELECT count(*) FROM raw.messages WHERE conversation_id = ? AND message_id = ?",
                 [cid, lost_message["id"]]) == [(1,)]


def test_a_partial_new_message_payload_fetches_the_pages(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    cid = synced_conversation(world, settings, lambda c: c["status"] == "open")
    [payload] = [p for p in world.add_message(cid, author_type="contact", at_ms=world.now_ms + 1000)
                 if p["type"] == "new_message"]
    partial = {**payload, "data": {k: v for k, v in payload["data"].items() if k != "body"}}
    write_events_file(settings.inbox_dir, [partial])
    simulator.stats.reset()
    result = apply_inbox(settings)
    assert result.events_applied == 1 and result.conversations_from_payloads == 0
    assert _calls(simulator)[("messages", f"/conversations/{cid}/messages")] >= 1
    assert query(settings, "SELECT body FROM raw.messages WHERE message_id = ?",
                 [payload["data"]["id"]]) == [(payload["data"]["body"],)]


def test_a_newer_change_no_event_explains_fetches_the_pages(sim_env, synced):
    simulator, settings = sim_env
    world = simulator.world
    synced(simulator, settings, END - timedelta(days=3), END)
    cid = synced_conversation(world, settings, lambda c: c["status"] == "open")
    delivered = world.add_message(cid, author_type="contact", at_ms=world.now_ms + 1000)
    late = world.add_message(cid, author_type="contact", at_ms=world.now_ms + 2000)  # not yet delivered
    write_events_file(settings.inbox_dir, [p for p in delivered if p["type"] == "new_message"])
    result = apply_inbox(settings)
    assert result.conversations_from_payloads == 0
    [late_message] = [p["data"] for p in late if p["type"] == "new_message"]
    assert query(settings, "SELECT count(*) FROM raw.messages WHERE message_id = ?", [late_message["id"]]) == [(1,)]


# --- identical payloads that may be new changes (current shapes: no changedAt) -------------------

def _status_rows(settings, conversation_id) -> list[tuple]:
    return query(settings, "SELECT status, changed_at, source FROM raw.status_events "
                           "WHERE conversation_id = ? ORDER BY changed_at, status, source", [conversation_id])


def test_closed_reopened_closed_again_without_changed_at_ends_closed_with_one_row_per_distinct_event(sim_env, synced):
    simulator, settings, world, conversation_id = synced_open_conversation(sim_env, synced)
    synced_rows = _status_rows(settings, conversation_id)
    base = world.now_ms
    closed, reopened = (world.set_status(conversation_id, "closed", at_ms=base + 60_000)
                        + world.set_status(conversation_id, "open", at_ms=base + 120_000))
    deliver(simulator, settings, [closed, reopened], spacing_s=0.01)
    first = apply_inbox_and_refresh(settings)
    assert first["events_applied"] == 2 and first["events_repeated"] == 0
    received = {r["payload"]["data"]["status"]: r["received_at"] for r in received_records(settings)}

    # Closed again: the very bytes of the first close, so the very same event id.
    [closed_again] = world.set_status(conversation_id, "closed", at_ms=base + 180_000)
    assert closed_again == closed
    [answer] = deliver(simulator, settings, [closed_again])
    assert answer["status"] == "accepted" and answer["repeat"] is True
    simulator.stats.reset()
    second = apply_inbox_and_refresh(settings)
    assert second["events_applied"] == 0 and second["events_duplicate"] == 1
    assert second["events_repeated"] == 1 and second["conversations_refetched"] == 1
    assert _calls(simulator)[("detail", f"/conversations/{conversation_id}")] == 1

    assert query(settings, "SELECT status FROM raw.conversations WHERE conversation_id = ?",
                 [conversation_id]) == [("closed",)]
    assert query(settings, "SELECT status, reopen_count, first_closed_at FROM marts.fct_conversations "
                           "WHERE conversation_id = ?", [conversation_id]) == [
        ("closed", 1, ms_to_ts(base + 60_000))]
    # Besides what the sync recorded: one webhook row per distinct event (the repeat adds
    # none), Drift's reported first close, and the close the repeat's refetch found, at
    # Drift's updatedAt.
    assert _status_rows(settings, conversation_id) == sorted(synced_rows + [
        ("closed", ms_to_ts(received["closed"]), "webhook"),
        ("open", ms_to_ts(received["open"]), "webhook"),
        ("closed", ms_to_ts(base + 60_000), "report"),
        ("closed", ms_to_ts(base + 180_000), "poll"),
    ], key=lambda row: (row[1], row[0], row[2]))
    assert query(settings, "SELECT count(*) FROM raw.webhook_events WHERE conversation_id = ?",
                 [conversation_id]) == [(2,)]


def test_a_redelivered_status_event_in_a_later_pass_costs_one_detail_call_and_adds_no_row(sim_env, synced):
    simulator, settings, world, conversation_id = synced_open_conversation(sim_env, synced)
    [closed] = world.set_status(conversation_id, "closed", at_ms=world.now_ms + 60_000)
    deliver(simulator, settings, [closed])
    apply_inbox(settings)
    status_rows = _status_rows(settings, conversation_id)
    webhook_rows = query(settings, "SELECT * FROM raw.webhook_events ORDER BY event_id")

    # Drift did not get our 2xx and sends the same event again; nothing changed meanwhile.
    [answer] = deliver(simulator, settings, [closed])
    assert answer["repeat"] is True
    simulator.stats.reset()
    result = apply_inbox(settings)
    assert (result.events_applied, result.events_repeated, result.status_events) == (0, 1, 0)
    assert dict(_calls(simulator)) == {("detail", f"/conversations/{conversation_id}"): 1}
    assert _status_rows(settings, conversation_id) == status_rows
    assert query(settings, "SELECT * FROM raw.webhook_events ORDER BY event_id") == webhook_rows


def test_an_agent_added_removed_and_added_again_without_changed_at_is_current(sim_env, synced):
    simulator, settings, world, conversation_id = synced_open_conversation(sim_env, synced)
    conversation = world.conversations[conversation_id]
    agent = next(a for a in world.agent_ids if a not in conversation["participants"])
    org = str(world.org_id)
    added = {"type": "conversation_participant_added", "orgId": org,
             "data": {"conversationId": conversation_id, "addedParticipants": [agent]}}
    removed = {"type": "conversation_participant_removed", "orgId": org,
               "data": {"conversationId": conversation_id, "removedParticipants": [agent]}}

    def current() -> list[tuple]:
        return query(settings, "SELECT is_current FROM raw.participants WHERE conversation_id = ? "
                               "AND participant_id = ? AND participant_type = 'user'", [conversation_id, agent])

    conversation["participants"].append(agent)
    deliver(simulator, settings, [added])
    apply_inbox(settings)
    assert current() == [(True,)]
    conversation["participants"].remove(agent)
    deliver(simulator, settings, [removed])
    apply_inbox(settings)
    assert current() == [(False,)]

    conversation["participants"].append(agent)
    [answer] = deliver(simulator, settings, [added])  # the same bytes as the first add
    assert answer["repeat"] is True
    result = apply_inbox(settings)
    assert (result.events_applied, result.events_repeated, result.conversations_refetched) == (0, 1, 1)
    assert current() == [(True,)]
