"""Widget events: `POST /widget-events` (signature, origin, size, privacy filter, dedupe) and
their way through the inbox into `raw.widget_events`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from drift_pipeline.settings import Settings, SettingsError
from drift_pipeline.warehouse.schema import create_raw_schema
from drift_pipeline.webhooks.apply import apply_inbox
from drift_pipeline.webhooks.events import event_id
from drift_pipeline.webhooks.inbox_files import iter_inbox_files, read_inbox_file, write_events_file
from drift_pipeline.webhooks.widget import (
    MAX_WIDGET_BODY_BYTES,
    SIGNATURE_HEADER,
    InvalidWidgetEvent,
    filter_event,
    sign,
)

from conftest import running_receiver

SECRET = "site-secret-0123456789abcdef"
SITE = "https://www.example.com"
OCCURRED_MS = 1_764_547_200_000  # 2025-12-01 00:00:00 UTC


def widget_event(conversation_id: int = 42, **overrides) -> dict:
    event = {"type": "conversation:start", "conversationId": conversation_id,
             "utm": {"source": "google", "medium": "cpc", "campaign": "winter-sale",
                     "term": "chat software", "content": "ad-b"},
             "page": "/pricing", "occurredAt": OCCURRED_MS}
    event.update(overrides)
    return event


def signed(event: dict, secret: str = SECRET) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home"),
                              "DRIFT_WEBHOOK_TOKEN": "webhook-token-0123456789",
                              "DRIFT_ACCESS_TOKEN": "unused-by-widget-events",
                              "DRIFT_PII_SALT": "test-salt",
                              "DRIFT_WIDGET_SECRET": SECRET,
                              "DRIFT_WIDGET_ORIGINS": f"{SITE}/, https://app.example.com:8443"})




def stored_payloads(settings: Settings) -> list[dict]:
    return [record["payload"] for path in iter_inbox_files(settings.inbox_dir)
            for record in read_inbox_file(path)]


# --- the privacy filter ------------------------------------------------------------------------

def test_filter_keeps_the_known_fields_and_counts_what_it_drops():
    event = filter_event(widget_event(
        utm={"source": "newsletter", "medium": "email", "campaign": "ann@example.com",
             "gclid": "abc", "term": "x" * 101},
        page="https://www.example.com/signup?email=ann%40example.com#form",
        email="ann@example.com", message="Hi, I need help with my invoice"))

    assert event.utm == {"source": "newsletter", "medium": "email", "campaign": None,
                         "term": None, "content": None}
    assert event.page_path == "/signup"
    # email and message (unknown fields), campaign (an email), gclid (unknown), term (too long)
    assert event.dropped_fields == 5
    assert "example.com" not in event.canonical.replace('"/signup"', "")
    assert filter_event(event.payload) == event  # re-filtering what is stored changes nothing


def test_event_id_is_the_shared_canonical_hash_of_the_kept_fields():
    plain = filter_event(widget_event())
    with_junk = filter_event(widget_event(visitorName="Ann"))
    assert plain.event_id == with_junk.event_id
    kept = {k: v for k, v in plain.payload.items() if k != "droppedFields"}
    assert plain.event_id == event_id(kept)


@pytest.mark.parametrize("change, fragment", [
    ({"conversationId": "42"}, "conversationId"),
    ({"occurredAt": 1_764_547_200}, "epoch milliseconds"),
    ({"type": "I typed a sentence here"}, "widget event name"),
])
def test_events_without_usable_required_fields_are_invalid(change, fragment):
    with pytest.raises(InvalidWidgetEvent, match=fragment):
        filter_event(widget_event(**change))


def test_origins_setting_must_be_scheme_and_host():
    with pytest.raises(SettingsError, match="DRIFT_WIDGET_ORIGINS"):
        Settings.from_env({"DRIFT_WIDGET_ORIGINS": "www.example.com/path"})


# --- the endpoint -------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_signed_widget_event_is_accepted_and_dropped_in_the_inbox(client, settings):
    body, headers = signed(widget_event(email="ann@example.com"))
    response = await client.post("/widget-events", content=body, headers={**headers, "Origin": SITE})

    assert response.status_code == 200
    expected = filter_event(widget_event())
    assert response.json() == {"status": "accepted", "event_id": expected.event_id,
                               "dropped_fields": 1}
    assert response.headers["access-control-allow-origin"] == SITE
    [payload] = stored_payloads(settings)
    assert payload == {**expected.payload, "droppedFields": 1}
    assert "ann@" not in json.dumps(payload)


@pytest.mark.anyio
async def test_relay_without_origin_is_judged_by_its_signature_alone(client, settings):
    body, headers = signed(widget_event())
    response = await client.post("/widget-events", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "accepted"


@pytest.mark.anyio
@pytest.mark.parametrize("signature", [None, "", "0" * 64, "sha256=deadbeef", "wrong-secret"])
async def test_bad_or_missing_signature_is_401_and_nothing_is_written(client, settings, signature):
    body, headers = signed(widget_event())
    if signature is None:
        del headers[SIGNATURE_HEADER]
    elif signature == "wrong-secret":
        headers[SIGNATURE_HEADER] = sign("another-site-secret", body)
    else:
        headers[SIGNATURE_HEADER] = signature
    response = await client.post("/widget-events", content=body, headers=headers)

    assert response.status_code == 401
    assert SIGNATURE_HEADER in response.json()["error"]
    assert stored_payloads(settings) == []


@pytest.mark.anyio
async def test_body_changed_after_signing_is_401(client, settings):
    body, headers = signed(widget_event())
    tampered = body.replace(b"google", b"bing!!")
    response = await client.post("/widget-events", content=tampered, headers=headers)
    assert response.status_code == 401


@pytest.mark.anyio
async def test_disallowed_origin_is_refused_403_even_when_signed(client, settings):
    body, headers = signed(widget_event())
    response = await client.post("/widget-events", content=body,
                                 headers={**headers, "Origin": "https://evil.example.net"})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert stored_payloads(settings) == []


@pytest.mark.anyio
async def test_preflight_answers_allowed_origins_only(client):
    request_headers = {"Access-Control-Request-Method": "POST",
                       "Access-Control-Request-Headers": f"content-type,{SIGNATURE_HEADER.lower()}"}
    allowed = await client.options("/widget-events",
                                   headers={**request_headers, "Origin": "https://app.example.com:8443"})
    refused = await client.options("/widget-events",
                                   headers={**request_headers, "Origin": "https://evil.example.net"})

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com:8443"
    assert SIGNATURE_HEADER in allowed.headers["access-control-allow-headers"]
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


@pytest.mark.anyio
async def test_oversized_body_is_413_before_the_signature_is_checked(client, settings):
    event = widget_event(page="/" + "a" * MAX_WIDGET_BODY_BYTES)
    body, headers = signed(event)
    response = await client.post("/widget-events", content=body, headers=headers)
    assert response.status_code == 413
    assert stored_payloads(settings) == []


@pytest.mark.anyio
async def test_unusable_event_is_422_with_the_reason(client, settings):
    body, headers = signed(widget_event(conversationId=None))
    response = await client.post("/widget-events", content=body, headers=headers)
    assert response.status_code == 422 and "conversationId" in response.json()["error"]


@pytest.mark.anyio
async def test_same_event_sent_twice_is_stored_once(client, settings):
    body, headers = signed(widget_event())
    first = await client.post("/widget-events", content=body, headers=headers)
    second = await client.post("/widget-events", content=body, headers=headers)
    assert first.json()["status"] == "accepted" and second.json()["status"] == "duplicate"
    assert len(stored_payloads(settings)) == 1


@pytest.mark.anyio
async def test_endpoint_is_off_without_a_site_secret(tmp_path):
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home"),
                                  "DRIFT_WEBHOOK_TOKEN": "webhook-token-0123456789"})
    async with running_receiver(settings) as http:
        body, headers = signed(widget_event())
        response = await http.post("/widget-events", content=body, headers=headers)
    assert response.status_code == 404 and "DRIFT_WIDGET_SECRET" in response.json()["error"]


# --- applying -----------------------------------------------------------------------------------

def _warehouse_with_conversation(settings: Settings, org_id: int, conversation_id: int) -> None:
    settings.ensure_dirs()
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        create_raw_schema(conn)
        conn.execute("INSERT INTO raw.conversations (org_id, conversation_id, status, created_at) "
                     "VALUES (?, ?, 'open', ?)", [org_id, conversation_id, datetime(2025, 12, 1)])


def _widget_rows(settings: Settings) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute(
            "SELECT org_id, conversation_id, event_type, occurred_at, utm_source, utm_medium, "
            "utm_campaign, utm_term, utm_content, page_path, dropped_fields "
            "FROM raw.widget_events ORDER BY conversation_id").fetchall()


def _record(event: dict, received_at: int = OCCURRED_MS + 500) -> dict:
    filtered = filter_event(event)
    return {"event_id": filtered.event_id, "received_at": received_at, "payload": filtered.payload}


def test_duplicate_widget_event_is_applied_once_with_its_conversations_org(settings):
    _warehouse_with_conversation(settings, org_id=7, conversation_id=42)
    event = widget_event(email="ann@example.com")
    write_events_file(settings.inbox_dir, [_record(event), _record(event, OCCURRED_MS + 900)])
    first = apply_inbox(settings)
    write_events_file(settings.inbox_dir, [_record(event, OCCURRED_MS + 2000)])  # resent later
    second = apply_inbox(settings)

    assert (first.widget_events_applied, first.events_duplicate, first.widget_fields_dropped) == (1, 1, 1)
    assert (second.widget_events_applied, second.events_duplicate) == (0, 1)
    assert first.events_applied == 1  # counts toward "refresh the marts"
    assert _widget_rows(settings) == [
        (7, 42, "conversation:start", datetime(2025, 12, 1), "google", "cpc", "winter-sale",
         "chat software", "ad-b", "/pricing", 1)]
    assert iter_inbox_files(settings.inbox_dir) == []


def test_widget_event_of_an_unsynced_conversation_takes_the_only_org(settings):
    _warehouse_with_conversation(settings, org_id=7, conversation_id=42)
    write_events_file(settings.inbox_dir, [_record(widget_event(conversation_id=99))])
    apply_inbox(settings)
    assert [row[:2] for row in _widget_rows(settings)] == [(7, 99)]


def test_widget_event_whose_org_cannot_be_told_is_quarantined_with_the_reason(settings):
    _warehouse_with_conversation(settings, org_id=7, conversation_id=42)
    _warehouse_with_conversation(settings, org_id=8, conversation_id=43)
    _warehouse_with_conversation(settings, org_id=8, conversation_id=42)  # ids are per workspace
    write_events_file(settings.inbox_dir, [_record(widget_event(conversation_id=99)),
                                           _record(widget_event(conversation_id=43)),
                                           _record(widget_event(conversation_id=42))])
    result = apply_inbox(settings)

    assert result.widget_events_applied == 1 and result.events_invalid == 2
    assert [row[:2] for row in _widget_rows(settings)] == [(8, 43)]
    reasons = sorted(path.read_text() for path in settings.quarantine_dir.glob("*.reason"))
    assert len(reasons) == 2
    assert any("conversation 99" in r for r in reasons) and any("conversation 42" in r for r in reasons)
    assert all("replay" in r for r in reasons)


def test_replaying_a_widget_event_that_still_has_no_org_says_why_in_one_line(settings):
    from drift_pipeline.operations import replay_event_file
    from drift_pipeline.settings import UsageError

    _warehouse_with_conversation(settings, org_id=7, conversation_id=42)
    _warehouse_with_conversation(settings, org_id=8, conversation_id=43)
    path = write_events_file(settings.home / "replay", [_record(widget_event(conversation_id=99))])
    with pytest.raises(UsageError, match="line 1: widget event for conversation 99"):
        replay_event_file(settings, path, refresh=False)
    assert _widget_rows(settings) == []
