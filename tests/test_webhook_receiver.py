"""The webhook receiver, its event format and its inbox files (`webhooks serve` in docs/reference.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request

from drift_pipeline.settings import Settings
from drift_pipeline.webhooks import inbox_writer as inbox_writer_module
from drift_pipeline.webhooks.events import (
    InvalidEvent,
    canonical_json,
    event_id,
    validate_event,
)
from drift_pipeline.webhooks.inbox_files import InvalidInboxFile, iter_inbox_files, read_inbox_file, write_events_file
from drift_pipeline.webhooks.inbox_writer import InboxWriter
from drift_pipeline.webhooks.seen_ids import SEEN_IDS_FILENAME, SeenIds
from drift_pipeline.webhooks.receiver import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    WebhookConfigError,
    create_app,
    read_bounded_body,
)

from conftest import running_receiver

TOKEN = "s3cret-verification-token-0123456789"


def new_message(message_id: int = 5001, conversation_id: int = 42, **extra) -> dict:
    return {
        "type": "new_message",
        "token": TOKEN,
        "orgId": 7,
        "data": {
            "id": message_id,
            "orgId": 7,
            "conversationId": conversation_id,
            "body": "<p>hello</p>",
            "type": "chat",
            "createdAt": 1_700_000_000_000 + message_id,
            "author": {"type": "contact", "id": 9, "bot": False},
            **extra,
        },
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home"),
                              "DRIFT_WEBHOOK_TOKEN": TOKEN})


def stored_records(settings: Settings) -> list[dict]:
    return [record for path in iter_inbox_files(settings.inbox_dir)
            for record in read_inbox_file(path)]


def inbox_entries(settings: Settings) -> list[str]:
    return sorted(path.name for path in settings.inbox_dir.iterdir())


def seen_ids_on_disk(settings: Settings) -> list[str]:
    """The ids in the seen list (each line: `<id> <received ms>`)."""
    path = settings.state_dir / SEEN_IDS_FILENAME
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else []


def assert_nothing_written(settings: Settings) -> None:
    assert inbox_entries(settings) == []
    assert seen_ids_on_disk(settings) == []


# --- events ----------------------------------------------------------------------------------

def test_canonical_json_sorts_keys_drops_whitespace_and_token():
    payload = {"type": "x", "token": TOKEN, "orgId": 1, "data": {"b": 1, "a": [1, 2]}}
    assert canonical_json(payload) == '{"data":{"a":[1,2],"b":1},"orgId":1,"type":"x"}'


def test_event_id_ignores_key_order_whitespace_and_token_but_not_values():
    payload = new_message()
    reordered = json.loads(json.dumps(dict(reversed(list(payload.items()))), indent=3))
    reordered["token"] = "another-token"
    assert event_id(payload) == event_id(reordered)
    assert len(event_id(payload)) == 64
    assert event_id(payload) != event_id(new_message(message_id=5002))


def test_validate_event_describes_a_known_event():
    event = validate_event(new_message())
    assert (event.type, event.org_id, event.conversation_id, event.known) == \
        ("new_message", 7, 42, True)
    assert event.occurred_at_ms == 1_700_000_005_001
    assert event.event_id == event_id(new_message())


def test_status_update_takes_its_time_from_changed_at():
    event = validate_event({"type": "conversation_status_updated", "orgId": 7, "data": {
        "conversationId": 42, "status": "closed", "changedAt": 1_700_000_000_123}})
    assert (event.conversation_id, event.occurred_at_ms) == (42, 1_700_000_000_123)


def test_new_conversation_takes_its_id_from_data_id():
    event = validate_event({"type": "new_conversation", "orgId": 7, "data": {"id": 99}})
    assert event.conversation_id == 99


def test_unknown_event_type_is_valid_but_flagged():
    event = validate_event({"type": "button_action", "orgId": 7, "data": {}})
    assert event.known is False
    assert event.conversation_id is None


@pytest.mark.parametrize("payload, fragment", [
    ([1, 2], "JSON object"),
    ({"orgId": 7, "data": {}}, "event.type"),
    ({"type": "new_message", "orgId": "seven", "data": {}}, "orgId"),
    ({"type": "new_message", "orgId": "-7", "data": {}}, "orgId"),
    ({"type": "new_message", "orgId": True, "data": {}}, "orgId"),
    ({"type": "new_message", "orgId": 7, "data": []}, "event.data"),
    ({"type": "new_message", "orgId": 7, "data": {"id": 1, "createdAt": 1}}, "conversationId"),
    ({"type": "new_message", "orgId": 7, "data": {"conversationId": 1, "createdAt": 1}}, "data.id"),
    ({"type": "new_message", "orgId": 7, "data": {"id": 1, "conversationId": 1,
                                                  "createdAt": "yesterday"}}, "createdAt"),
    ({"type": "new_conversation", "orgId": 7, "data": {}}, "data.id"),
    ({"type": "conversation_status_updated", "orgId": 7,
      "data": {"conversationId": 1, "status": "archived", "changedAt": 1}}, "status"),
    ({"type": "conversation_participant_added", "orgId": 7,
      "data": {"conversationId": 1, "addedParticipants": 5, "changedAt": 1}}, "addedParticipants"),
    ({"type": "conversation_participant_removed", "orgId": 7,
      "data": {"conversationId": 1, "removedParticipants": [5], "changedAt": "yesterday"}},
     "changedAt"),
    ({"type": "conversation_status_updated", "orgId": 7,
      "data": {"conversationId": 1, "status": "closed", "changedAt": True}}, "changedAt"),
    ({"type": "new_message", "orgId": 7}, "conversationId"),
    ({"type": "gdpr_delete_requested", "orgId": 7, "data": {"name": "x"}}, "contact"),
    ({"type": "contact_updated", "orgId": 7, "data": {"endUserId": "not-an-id"}}, "endUserId"),
])
def test_wrong_shapes_are_invalid_with_a_one_line_reason(payload, fragment):
    with pytest.raises(InvalidEvent) as caught:
        validate_event(payload)
    assert fragment in caught.value.reason
    assert "\n" not in caught.value.reason


def test_gdpr_request_may_name_the_contact_by_email_only():
    event = validate_event({"type": "gdpr_delete_requested", "orgId": 7,
                            "data": {"attributes": {"email": "a@example.com"}}})
    assert event.known
    assert (event.contact_id, event.contact_email) == (None, "a@example.com")


def test_org_id_as_a_numeric_string_is_normalized_but_keeps_its_own_event_id():
    as_string = validate_event({**new_message(), "orgId": "7"})
    as_number = validate_event(new_message())
    assert as_string.org_id == 7 and isinstance(as_string.org_id, int)
    # The id is of the payload as sent: a redelivery with the same spelling dedupes.
    assert as_string.event_id == event_id({**new_message(), "orgId": "7"}) != as_number.event_id


@pytest.mark.parametrize("status", ["CLOSED", "Closed", " closed "])
def test_status_in_any_letter_case_is_normalized_to_lower_case(status):
    event = validate_event({"type": "conversation_status_updated", "orgId": 7, "data": {
        "conversationId": 42, "status": status, "changedAt": 1_700_000_000_123}})
    assert event.status == "closed"
    assert event.data["status"] == status  # the stored payload stays as sent


@pytest.mark.parametrize("event_type, data", [
    ("conversation_status_updated", {"conversationId": 42, "status": "open"}),
    ("conversation_participant_added", {"conversationId": 42, "addedParticipants": [5]}),
    ("conversation_participant_removed", {"conversationId": 42, "removedParticipants": [5]}),
])
def test_status_and_participant_events_without_changed_at_are_valid_without_a_time(
        event_type, data):
    event = validate_event({"type": event_type, "orgId": "7", "data": data})
    assert event.conversation_id == 42
    assert event.occurred_at_ms is None  # the apply step uses the time received
    assert event.repeatable  # the same change made again gives the same bytes


@pytest.mark.parametrize("payload", [
    {"type": "conversation_status_updated", "orgId": 7,
     "data": {"conversationId": 42, "status": "closed", "changedAt": 1_700_000_000_000}},
    {"type": "conversation_participant_added", "orgId": 7,
     "data": {"conversationId": 42, "addedParticipants": [5], "changedAt": 1_700_000_000_000}},
    new_message(),
    {"type": "new_conversation", "orgId": 7, "data": {"id": 42}},
    {"type": "contact_identified", "orgId": 7, "data": {"endUserId": 5400000001}},
    {"type": "button_action", "orgId": 7, "data": {"goal": 1}},
], ids=["status-with-changedAt", "participant-with-changedAt", "new_message", "new_conversation",
        "contact_identified", "unknown"])
def test_only_untimed_status_and_participant_events_are_repeatable(payload):
    assert validate_event(payload).repeatable is False


def test_app_disconnected_without_data_is_valid():
    event = validate_event({"type": "app_disconnected", "orgId": "7"})
    assert (event.known, event.org_id, event.data) == (True, 7, {})


@pytest.mark.parametrize("event_type, data, contact_id, email", [
    ("contact_identified", {"endUserId": 5400000001}, 5400000001, None),
    ("contact_identified", {"endUserId": "5400000001"}, 5400000001, None),
    ("contact_updated", {"endUserId": 5400000001, "timestamp": 1_700_000_000_000,
                         "diff": [{"name": "email", "previous": "a@x.io", "updated": "b@x.io"}]},
     5400000001, None),
    ("gdpr_delete_requested", {"endUserId": 5400000001}, 5400000001, None),
    ("gdpr_delete_requested", {"endUserId": "Visitor@Example.com"}, None, "Visitor@Example.com"),
    ("contact_updated", {"contactId": 12}, 12, None),
    ("contact_identified", {"id": 12}, 12, None),
    ("contact_identified", {"email": "v@example.com"}, None, "v@example.com"),
])
def test_contact_events_name_the_contact_by_end_user_id_or_the_older_spellings(
        event_type, data, contact_id, email):
    event = validate_event({"type": event_type, "orgId": 7, "data": data})
    assert (event.contact_id, event.contact_email) == (contact_id, email)


def test_contact_updated_takes_its_time_from_timestamp():
    event = validate_event({"type": "contact_updated", "orgId": 7, "data": {
        "endUserId": 1, "timestamp": 1_700_000_000_999, "diff": []}})
    assert event.occurred_at_ms == 1_700_000_000_999


# --- the receiver ----------------------------------------------------------------------------
# Driven in process through httpx.ASGITransport (with the app's lifespan, as a server runs it);
# the last test goes through a real uvicorn on loopback.



@pytest.mark.anyio
async def test_valid_event_is_accepted_and_dropped_atomically(client, settings):
    payload = new_message()
    response = await client.post("/webhooks", json=payload)

    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "event_id": event_id(payload)}
    files = iter_inbox_files(settings.inbox_dir)
    assert len(files) == 1 and files[0].suffix == ".json"
    assert inbox_entries(settings) == [files[0].name]  # no temp file left behind
    lines = files[0].read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == {"event_id", "received_at", "payload"}
    assert record["event_id"] == event_id(payload)
    assert isinstance(record["received_at"], int) and record["received_at"] > 1_600_000_000_000
    assert "token" not in record["payload"]
    assert record["payload"]["data"] == payload["data"]
    assert TOKEN not in files[0].read_text()
    assert seen_ids_on_disk(settings) == [event_id(payload)]


@pytest.mark.anyio
async def test_stored_payload_validates_back_to_the_same_event_id(client, settings):
    payload = {"type": "conversation_status_updated", "token": TOKEN, "orgId": 7,
               "data": {"conversationId": 42, "status": "closed", "changedAt": 1_700_000_000_000,
                        "note": "caf\u00e9 \u2028 \"quoted\""}}
    await client.post("/webhooks", json=payload)
    [record] = stored_records(settings)
    event = validate_event(record["payload"])
    assert event.event_id == record["event_id"] == event_id(payload)
    assert event.canonical == canonical_json(payload)
    assert record["payload"] == {key: value for key, value in payload.items() if key != "token"}


def without_token(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != "token"}


@pytest.mark.anyio
async def test_token_in_the_header_only_is_accepted(client, settings):
    payload = without_token(new_message())
    response = await client.post("/webhooks", json=payload,
                                 headers={"X-Verification-Token": TOKEN})
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "event_id": event_id(payload)}
    [record] = stored_records(settings)
    assert record["payload"] == payload
    assert TOKEN not in "".join(p.read_text() for p in settings.inbox_dir.iterdir())


@pytest.mark.anyio
async def test_token_in_the_body_only_is_still_accepted(client, settings):
    response = await client.post("/webhooks", json=new_message())
    assert response.json()["status"] == "accepted"
    assert "token" not in stored_records(settings)[0]["payload"]


@pytest.mark.anyio
async def test_a_matching_body_token_wins_over_a_stale_header_and_vice_versa(client, settings):
    first = await client.post("/webhooks", json=new_message(1),
                              headers={"X-Verification-Token": "an-old-token"})
    second = await client.post("/webhooks", json={**new_message(2), "token": "an-old-token"},
                               headers={"X-Verification-Token": TOKEN})
    assert [first.status_code, second.status_code] == [200, 200]
    assert len(stored_records(settings)) == 2


@pytest.mark.anyio
async def test_wrong_token_in_header_and_body_is_rejected_and_nothing_is_written(client, settings):
    response = await client.post("/webhooks", json={**new_message(), "token": "guess"},
                                 headers={"X-Verification-Token": "guess-again"})
    assert response.status_code == 401
    assert "guess" not in response.text
    assert_nothing_written(settings)


@pytest.mark.anyio
async def test_wrong_token_is_rejected_and_nothing_is_written(client, settings):
    response = await client.post("/webhooks", json={**new_message(), "token": "guess"})
    assert response.status_code == 401
    assert "guess" not in response.text
    assert_nothing_written(settings)


@pytest.mark.anyio
async def test_wrong_header_token_without_a_body_token_is_rejected(client, settings):
    response = await client.post("/webhooks", json=without_token(new_message()),
                                 headers={"X-Verification-Token": "guess"})
    assert response.status_code == 401
    assert_nothing_written(settings)


@pytest.mark.anyio
@pytest.mark.parametrize("token", [None, 12345, ""])
async def test_missing_or_non_string_token_is_rejected(client, settings, token):
    payload = new_message()
    if token is None:
        del payload["token"]
    else:
        payload["token"] = token
    assert (await client.post("/webhooks", json=payload)).status_code == 401
    assert (await client.post("/webhooks", json=payload,
                              headers={"X-Verification-Token": ""})).status_code == 401
    assert_nothing_written(settings)


@pytest.mark.anyio
async def test_an_unauthenticated_unusable_event_is_refused_not_quarantined(client, settings):
    response = await client.post("/webhooks", json={"type": "new_message", "orgId": 7})
    assert response.status_code == 401
    assert_nothing_written(settings)
    assert not settings.quarantine_dir.exists() or not list(settings.quarantine_dir.iterdir())


@pytest.mark.anyio
async def test_oversized_body_with_content_length_is_rejected(client, settings):
    payload = new_message(padding="x" * (MAX_BODY_BYTES + 10))
    response = await client.post("/webhooks", json=payload)
    assert response.status_code == 413
    assert_nothing_written(settings)


@pytest.mark.anyio
async def test_oversized_body_without_content_length_is_rejected(client, settings):
    chunk = b"x" * 65536

    async def chunks():
        yield b'{"type":"new_message","token":"' + TOKEN.encode() + b'","pad":"'
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk
        yield b'"}'

    response = await client.post("/webhooks", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert_nothing_written(settings)


def test_body_reading_stops_as_soon_as_the_limit_is_passed():
    sent = 0

    async def receive():
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}  # never ends

    request = Request({"type": "http", "method": "POST", "path": "/webhooks", "headers": []},
                      receive)
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_bounded_body(request, limit=10_000))
    assert sent == 11


@pytest.mark.anyio
async def test_non_json_body_is_rejected_with_a_one_line_reason(client, settings):
    response = await client.post(
        "/webhooks", content=b"token=" + TOKEN.encode() + b"&type=x",
        headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert "\n" not in response.json()["error"]
    assert TOKEN not in response.text
    assert_nothing_written(settings)


@pytest.mark.anyio
async def test_nan_is_not_json(client, settings):
    body = json.dumps(new_message()).replace('"createdAt": 1700000005001', '"createdAt": NaN')
    assert "NaN" in body
    assert (await client.post("/webhooks", content=body)).status_code == 400
    assert_nothing_written(settings)


@pytest.mark.anyio
@pytest.mark.parametrize("payload", [
    {"type": "new_message", "orgId": 7, "data": {"id": 1}},
    {"type": 3, "orgId": 7, "data": {}},
    {"type": "new_conversation", "orgId": 7},
    {"type": "conversation_status_updated", "orgId": 7,
     "data": {"conversationId": 1, "status": "archived", "changedAt": 1}},
    [{"type": "new_message"}],
])
async def test_an_authenticated_unusable_event_is_quarantined_with_its_reason_not_refused(
        client, settings, payload):
    response = await client.post("/webhooks", json=payload,
                                 headers={"X-Verification-Token": TOKEN})
    # 2xx: Drift would retry a 4xx forever and the event would never be kept.
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "quarantined" and answer["event_id"] == event_id(payload)
    assert answer["reason"] and "\n" not in answer["reason"]
    assert "archived" not in response.text  # the body is never echoed
    assert_nothing_written(settings)  # nothing for the apply step: it waits in quarantine
    kept = settings.quarantine_dir / f"received-{event_id(payload)}.json"
    record = json.loads(kept.read_text())
    assert record["payload"] == payload and record["event_id"] == event_id(payload)
    assert (settings.quarantine_dir / f"{kept.name}.reason").read_text().strip() == answer["reason"]

    again = await client.post("/webhooks", json=payload, headers={"X-Verification-Token": TOKEN})
    assert again.json()["status"] == "duplicate"
    assert len(list(settings.quarantine_dir.glob("*.json"))) == 1


@pytest.mark.anyio
async def test_a_quarantined_event_keeps_no_token(client, settings):
    payload = {"type": "new_message", "token": TOKEN, "orgId": 7, "data": {"id": 1}}
    assert (await client.post("/webhooks", json=payload)).json()["status"] == "quarantined"
    for path in settings.quarantine_dir.iterdir():
        assert TOKEN not in path.read_text()
    [kept] = settings.quarantine_dir.glob("*.json")
    assert read_inbox_file(kept)[0]["payload"] == without_token(payload)


@pytest.mark.anyio
async def test_same_event_delivered_three_times_is_stored_once(client, settings):
    payload = new_message()
    deliveries = [
        json.dumps(payload),
        json.dumps(dict(reversed(list(payload.items())))),
        json.dumps(payload, indent=4, sort_keys=True),
    ]
    answers = [(await client.post("/webhooks", content=body)).json() for body in deliveries]

    assert [answer["status"] for answer in answers] == ["accepted", "duplicate", "duplicate"]
    assert {answer["event_id"] for answer in answers} == {event_id(payload)}
    assert len(stored_records(settings)) == 1


@pytest.mark.anyio
async def test_concurrent_redeliveries_are_stored_once(client, settings):
    responses = await asyncio.gather(
        *(client.post("/webhooks", json=new_message()) for _ in range(10)))
    assert sorted(response.json()["status"] for response in responses) == \
        ["accepted"] + ["duplicate"] * 9
    assert len(stored_records(settings)) == 1


def status_updated(status: str, conversation_id: int = 42, **extra) -> dict:
    """A status event as Drift's current shapes send it: no `changedAt`."""
    return {"type": "conversation_status_updated", "token": TOKEN, "orgId": 7,
            "data": {"conversationId": conversation_id, "status": status, **extra}}


@pytest.mark.anyio
async def test_closed_reopened_closed_again_without_changed_at_keeps_the_second_close(
        client, settings):
    answers = [(await client.post("/webhooks", json=status_updated(status))).json()
               for status in ("closed", "open", "closed")]
    closed_id, open_id = event_id(status_updated("closed")), event_id(status_updated("open"))
    assert answers == [{"status": "accepted", "event_id": closed_id},
                       {"status": "accepted", "event_id": open_id},
                       {"status": "accepted", "event_id": closed_id, "repeat": True}]
    records = stored_records(settings)
    assert [(r["event_id"], r["payload"]["data"]["status"]) for r in records] == [
        (closed_id, "closed"), (open_id, "open"), (closed_id, "closed")]
    assert records[2]["received_at"] >= records[1]["received_at"]  # its own arrival
    assert seen_ids_on_disk(settings) == [closed_id, open_id], "a repeat adds no seen line"

    # A true redelivery of a message is still answered as a duplicate and not written.
    message = [(await client.post("/webhooks", json=new_message())).json()["status"]
               for _ in range(2)]
    assert message == ["accepted", "duplicate"]
    assert len(stored_records(settings)) == 4
    assert seen_ids_on_disk(settings) == [closed_id, open_id, event_id(new_message())]


@pytest.mark.anyio
async def test_repeated_participant_events_without_changed_at_are_stored_again(client, settings):
    added = {"type": "conversation_participant_added", "token": TOKEN, "orgId": 7,
             "data": {"conversationId": 42, "addedParticipants": [301]}}
    removed = {"type": "conversation_participant_removed", "token": TOKEN, "orgId": 7,
               "data": {"conversationId": 42, "removedParticipants": [301]}}
    answers = [(await client.post("/webhooks", json=payload)).json()
               for payload in (added, removed, added)]
    assert [answer.get("repeat", False) for answer in answers] == [False, False, True]
    assert len(stored_records(settings)) == 3


@pytest.mark.anyio
async def test_a_status_event_with_changed_at_sent_again_is_a_duplicate(client, settings):
    # changedAt tells two closes apart, so identical bytes can only be a redelivery.
    timed = status_updated("closed", changedAt=1_700_000_000_000)
    answers = [(await client.post("/webhooks", json=timed)).json() for _ in range(2)]
    assert [answer["status"] for answer in answers] == ["accepted", "duplicate"]
    assert "repeat" not in answers[1]
    assert len(stored_records(settings)) == 1


def test_repeats_queued_with_their_original_each_get_a_line_of_their_own(settings):
    writer = InboxWriter(settings.inbox_dir, settings.state_dir)
    writer.start()
    try:
        closed = status_updated("closed")
        futures = [writer.submit_nowait(closed, repeatable=True) for _ in range(3)]
        results = [future.result(timeout=10) for future in futures]
    finally:
        writer.close()
    assert [(r.status, r.repeat) for r in results] == [
        ("accepted", False), ("accepted", True), ("accepted", True)]
    assert [r["event_id"] for r in stored_records(settings)] == [event_id(closed)] * 3
    assert seen_ids_on_disk(settings) == [event_id(closed)]


@pytest.mark.anyio
async def test_dedupe_survives_a_restart(settings):
    async with running_receiver(settings) as first:
        assert (await first.post("/webhooks", json=new_message())).json()["status"] == "accepted"
    async with running_receiver(settings) as second:
        assert (await second.post("/webhooks", json=new_message())).json()["status"] == \
            "duplicate"
        assert (await second.post("/webhooks", json=new_message(5002))).json()["status"] == \
            "accepted"
    assert len(stored_records(settings)) == 2


@pytest.mark.anyio
async def test_events_still_in_the_inbox_count_as_seen_without_the_seen_list(settings):
    async with running_receiver(settings) as first:
        await first.post("/webhooks", json=new_message())
    (settings.state_dir / SEEN_IDS_FILENAME).unlink()  # e.g. a crash before it was appended
    async with running_receiver(settings) as second:
        assert (await second.post("/webhooks", json=new_message())).json()["status"] == \
            "duplicate"


@pytest.mark.anyio
async def test_unknown_event_type_is_accepted_and_stored(client, settings):
    payload = {"type": "button_action", "token": TOKEN, "orgId": 7, "data": {"goal": 1}}
    response = await client.post("/webhooks", json=payload)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert [record["payload"]["type"] for record in stored_records(settings)] == \
        ["button_action"]


def test_refuses_to_start_without_a_webhook_token(tmp_path):
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path)})
    with pytest.raises(WebhookConfigError, match="DRIFT_WEBHOOK_TOKEN is not set"):
        create_app(settings)


@pytest.mark.anyio
async def test_healthz_answers_200_when_ready(client, settings):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert settings.inbox_dir.is_dir()


@pytest.mark.anyio
async def test_failed_write_answers_503_and_a_retry_is_then_accepted(client, settings,
                                                                    monkeypatch):
    real_write = inbox_writer_module.write_inbox_file

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inbox_writer_module, "write_inbox_file", full_disk)
    assert (await client.post("/webhooks", json=new_message())).status_code == 503
    assert (await client.get("/healthz")).status_code == 503
    assert_nothing_written(settings)

    monkeypatch.setattr(inbox_writer_module, "write_inbox_file", real_write)
    assert (await client.post("/webhooks", json=new_message())).json()["status"] == "accepted"
    assert (await client.get("/healthz")).status_code == 200
    assert len(stored_records(settings)) == 1


@pytest.mark.anyio
async def test_token_and_body_never_appear_in_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    marker = "body-marker-that-must-not-be-logged"
    await client.post("/webhooks", json=new_message(note=marker))
    await client.post("/webhooks", json={**new_message(), "token": "wrong-" + TOKEN})
    await client.post("/webhooks", json={"type": "new_message", "token": TOKEN, "orgId": 7,
                                         "data": {"note": marker}})
    await client.post("/webhooks", content=b"{not json " + TOKEN.encode())

    await client.post("/webhooks", json=without_token(new_message(7)),
                      headers={"X-Verification-Token": TOKEN})

    assert "POST /webhooks 200" in caplog.text
    assert "POST /webhooks 401" in caplog.text
    assert "type=invalid" in caplog.text  # the quarantined one
    assert TOKEN not in caplog.text
    assert marker not in caplog.text


# --- the inbox files -------------------------------------------------------------------------

def test_write_events_file_drops_tokens_and_reads_back(tmp_path):
    path = write_events_file(tmp_path, [new_message(1), new_message(2)])
    records = read_inbox_file(path)
    assert [record["event_id"] for record in records] == \
        [event_id(new_message(1)), event_id(new_message(2))]
    assert all("token" not in record["payload"] for record in records)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_inbox_files_are_listed_oldest_first_and_temp_files_ignored(tmp_path):
    (tmp_path / "1700000000999-000001.json").write_text("")
    (tmp_path / "1700000000001-000007.json").write_text("")
    (tmp_path / "1700000000001-000010.json").write_text("")
    (tmp_path / ".tmp-123-abc").write_text("half")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in iter_inbox_files(tmp_path)] == [
        "1700000000001-000007.json", "1700000000001-000010.json", "1700000000999-000001.json"]


@pytest.mark.parametrize("content, fragment", [
    ("", "no events"),
    ('{"event_id": "' + "a" * 64 + '", "received_at": 1, "payload": {}}\n{"event_', "line 2"),
    ("[1]\n", "not a JSON object"),
    ('{"event_id": "nope", "received_at": 1, "payload": {}}\n', "event_id"),
    ('{"event_id": "' + "a" * 64 + '", "received_at": "x", "payload": {}}\n', "received_at"),
    ('{"event_id": "' + "a" * 64 + '", "received_at": 1, "payload": []}\n', "payload"),
])
def test_malformed_inbox_file_raises_invalid_inbox_file(tmp_path, content, fragment):
    path = tmp_path / "1700000000000-000000.json"
    path.write_text(content)
    with pytest.raises(InvalidInboxFile) as caught:
        read_inbox_file(path)
    assert fragment in caught.value.reason


def test_events_queued_during_a_write_share_the_next_file_and_fsync(tmp_path, monkeypatch):
    real_write = inbox_writer_module.write_inbox_file
    first_write_started, release_first_write = threading.Event(), threading.Event()

    def slow_first_write(*args, **kwargs):
        if not first_write_started.is_set():
            first_write_started.set()
            release_first_write.wait(timeout=30)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(inbox_writer_module, "write_inbox_file", slow_first_write)
    writer = InboxWriter(tmp_path / "inbox", tmp_path / "state", linger_s=0)
    writer.start()
    try:
        first = writer.submit_nowait(new_message(0))
        assert first_write_started.wait(timeout=30)
        rest = [writer.submit_nowait(new_message(i)) for i in range(1, 200)]
        release_first_write.set()
        results = [future.result(timeout=30) for future in [first, *rest]]
    finally:
        writer.close()
    assert {result.status for result in results} == {"accepted"}
    files = iter_inbox_files(tmp_path / "inbox")
    assert [len(read_inbox_file(path)) for path in files] == [1, 199]


# --- through a real server -------------------------------------------------------------------

def test_receiver_over_real_http_on_loopback(settings):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):  # wait for readiness, not for a duration
            if server.started:
                break
            time.sleep(0.01)
        assert server.started
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            answers = [http.post("/webhooks", json=new_message(i)).json() for i in range(20)]
            assert http.post("/webhooks", json=new_message(0)).json()["status"] == "duplicate"
            assert http.post("/webhooks", json={**new_message(), "token": "x"}).status_code == 401
            header_only = http.post("/webhooks", json=without_token(new_message(99)),
                                    headers={"X-Verification-Token": TOKEN})
            assert header_only.json()["status"] == "accepted"

            def chunks():
                yield b'{"pad":"'
                for _ in range(MAX_BODY_BYTES // 65536 + 2):
                    yield b"x" * 65536

            assert http.post("/webhooks", content=chunks()).status_code == 413
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert {answer["status"] for answer in answers} == {"accepted"}
    assert sorted(record["event_id"] for record in stored_records(settings)) == \
        sorted([event_id(new_message(i)) for i in range(20)]
               + [event_id(without_token(new_message(99)))])
    assert not [name for name in inbox_entries(settings) if name.startswith(".tmp-")]


# --- seen ids: a rolling window --------------------------------------------------------------

def test_seen_ids_stay_bounded_over_100k_events_and_survive_a_restart(tmp_path):
    """100,000 events over a simulated day against a one-hour window, written as the writer
    thread writes them (append per batch, compact when due), without HTTP."""
    state, inbox = tmp_path / "state", tmp_path / "inbox"
    state.mkdir()
    inbox.mkdir()
    hour_ms = 3_600_000
    clock = [1_800_000_000_000]
    # One event waits in the inbox (its org is disconnected, say) far longer than the window.
    waiting_id = event_id({"type": "new_message", "n": -1})
    write_events_file(inbox, [{"event_id": waiting_id, "received_at": clock[0],
                               "payload": {"type": "new_message", "n": -1}}])
    seen = SeenIds(state, inbox, window_ms=hour_ms, clock=lambda: clock[0])
    seen.load()
    path = state / SEEN_IDS_FILENAME
    events, per_batch = 100_000, 50
    step_ms = 24 * hour_ms // (events // per_batch)  # a day of traffic, ~1.2 events/s
    largest = 0
    for batch in range(events // per_batch):
        clock[0] += step_ms
        entries = [(f"{batch * per_batch + n:064x}", clock[0]) for n in range(per_batch)]
        seen.persist(entries)
        seen.remember(entries)
        seen.maybe_compact()
        largest = max(largest, path.stat().st_size)
    seen.close(sync=True)

    line = 64 + 1 + 13 + 1
    live = events * hour_ms // (24 * hour_ms)  # ids received within the window, ~4,200
    assert len(seen) <= live + per_batch + 1
    # Never more than twice the window's ids (or the window plus 10,000 lines): 1.1 MB here,
    # against 7.9 MB for all 100,000 ids, and the same however many days it runs.
    assert largest <= (live + per_batch + max(10_000, live + per_batch) + 1) * line
    assert largest < events * line / 5

    restarted = SeenIds(state, inbox, window_ms=hour_ms, clock=lambda: clock[0])
    restarted.load()
    assert f"{events - 1:064x}" in restarted, "a recent id is still a duplicate after a restart"
    assert f"{0:064x}" not in restarted, "an id older than the window is forgotten"
    assert waiting_id in restarted, "an id still waiting in the inbox is never forgotten"
    assert path.stat().st_size <= (len(restarted) + 1) * line


def test_a_seen_list_of_bare_ids_from_an_older_version_is_read_and_rewritten(settings):
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    old = [event_id({"n": n}) for n in range(3)]
    (state / SEEN_IDS_FILENAME).write_text("".join(f"{i}\n" for i in old) + "abc")  # partial last line
    seen = SeenIds(state, settings.inbox_dir)
    seen.load()
    assert all(i in seen for i in old) and len(seen) == 3
    assert [line.split()[0] for line in (state / SEEN_IDS_FILENAME).read_text().splitlines()] == old
