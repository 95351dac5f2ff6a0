"""Property-based tests of the webhook receiver (Hypothesis): any JSON an authenticated sender
could post is accepted, quarantined or refused with a reason, and never answered 500.

Two generators: arbitrary JSON values (the shapes nobody documents), and Drift-like events of
every known type whose fields take any JSON value (ids as numbers, numeric strings, floats,
nulls, objects; timestamps of any sign and size)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from starlette.testclient import TestClient

from drift_pipeline.settings import Settings
from drift_pipeline.webhooks.events import KNOWN_EVENT_TYPES
from drift_pipeline.webhooks.receiver import create_app

TOKEN = "property-verification-token-0123456789"
HEADERS = {"X-Verification-Token": TOKEN, "Content-Type": "application/json"}

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) \
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=5), max_leaves=20)
ids = st.integers(min_value=-5, max_value=2**64) | st.integers(min_value=0, max_value=10**12).map(str) | json_values
FIELDS = ("id", "conversationId", "status", "changedAt", "createdAt", "author", "type", "endUserId",
          "addedParticipants", "removedParticipants", "slug", "playbookId", "goalId", "body", "orgId")
drift_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(KNOWN_EVENT_TYPES)) | st.text(max_size=20), "orgId": ids},
    optional={"data": st.dictionaries(st.sampled_from(FIELDS), ids | json_values, max_size=8) | json_values,
              "token": st.just(TOKEN) | st.text(max_size=10)})

OUTCOMES = {"accepted", "duplicate", "quarantined"}


def _check(client: TestClient, quarantine: Path, payload) -> str:
    response = client.post("/webhooks", content=json.dumps(payload).encode(), headers=HEADERS)
    assert response.status_code in (200, 400, 413), (response.status_code, response.text, payload)
    body = response.json()
    if response.status_code != 200:
        assert body["error"], payload  # refused, saying why
        return "refused"
    assert body["status"] in OUTCOMES, body
    if body["status"] == "quarantined":  # kept with its reason beside it
        assert body["reason"]
        kept = list(quarantine.glob(f"*{body['event_id']}*"))
        assert any(p.name.endswith(".reason") for p in kept) and len(kept) >= 2, kept
    return body["status"]


def _app(tmp_path: Path) -> TestClient:
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path / "home"), "DRIFT_WEBHOOK_TOKEN": TOKEN})
    return TestClient(create_app(settings), raise_server_exceptions=True), settings.quarantine_dir


def test_any_json_value_posted_with_the_token_gets_an_answer_never_a_500(tmp_path):
    client, quarantine = _app(tmp_path)
    with client:
        @hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(json_values)
        def check(payload):
            _check(client, quarantine, payload)

        check()


def test_any_drift_like_event_with_any_field_values_gets_an_answer_never_a_500(tmp_path):
    client, quarantine = _app(tmp_path)
    with client:
        @hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(drift_like)
        def check(payload):
            seen.add(_check(client, quarantine, payload))

        seen: set[str] = set()
        check()
    # The generator reaches every branch: stored, quarantined for its shape, refused.
    assert {"accepted", "quarantined"} <= seen, seen
