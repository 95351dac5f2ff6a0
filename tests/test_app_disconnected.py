"""app_disconnected: Drift revoked the app's access to a workspace, so the pipeline stops using
that workspace's tokens (client calls, syncs, scheduled runs) until `auth exchange` re-authorizes
it. Driven through the receiver and the apply step, with the simulator in both shapes."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from dagster import SkipReason, build_schedule_context

from drift_pipeline.cli import main
from drift_pipeline.drift.auth_status import auth_status, disconnection_reason
from drift_pipeline.drift.disconnects import DISCONNECTED_FILENAME
from drift_pipeline.drift.authorize import auth_exchange
from drift_pipeline.drift.client import DriftClient
from drift_pipeline.drift.errors import DriftDisconnected
from drift_pipeline.resources import DriftApiResource
from drift_pipeline.schedules import nightly_drift_sync, weekly_drift_resync
from drift_pipeline.settings import Settings
from drift_pipeline.operations import replay_event_file
from drift_pipeline.partitions import ORG_TAG
from drift_pipeline.webhooks.apply import apply_inbox

from conftest import SIM_END, deliver, query, sync

END = SIM_END.replace(tzinfo=None)
TICK = datetime(2026, 11, 16, 2, 0, tzinfo=timezone.utc)


# Each test runs with the simulator in both of Drift's documented shapes (conftest's `sim_env`).
both_shapes = pytest.mark.parametrize("sim_env", ["current", "legacy"], indirect=True)


@pytest.fixture
def oauth_env(sim_env, monkeypatch):
    """`sim_env` authorized with `auth exchange` (tokens in the encrypted store) instead of a
    static DRIFT_ACCESS_TOKEN."""
    simulator, _ = sim_env
    monkeypatch.delenv("DRIFT_ACCESS_TOKEN")
    monkeypatch.setenv("DRIFT_CLIENT_ID", simulator.config.client_id)
    monkeypatch.setenv("DRIFT_CLIENT_SECRET", simulator.config.client_secret)
    settings = Settings.from_env()
    auth_exchange(settings, simulator.issue_authorization_code())
    return simulator, settings


def _schedule_outcome(schedule):
    context = build_schedule_context(scheduled_execution_time=TICK, resources={"drift": DriftApiResource.from_env()})
    return schedule(context)


def _disconnect(simulator, settings) -> None:
    [payload] = simulator.world.disconnect_app()
    if simulator.config.shapes == "current":
        assert "data" not in payload
    [answer] = deliver(simulator, settings, [payload])
    assert answer["status"] == "accepted"
    result = apply_inbox(settings)
    assert result.events_applied == 1 and result.orgs_disconnected == [simulator.config.org_id]


@both_shapes
def test_app_disconnected_stops_the_workspace_tokens_until_auth_exchange(oauth_env, capsys):
    simulator, settings = oauth_env
    org_id = simulator.config.org_id
    sync(settings, END - timedelta(days=1), END)
    assert [r.tags[ORG_TAG] for r in _schedule_outcome(nightly_drift_sync)] == [str(org_id)]

    _disconnect(simulator, settings)
    assert auth_status(settings)["disconnected_at"] is not None
    assert query(settings, "SELECT event_type, outcome FROM raw.webhook_events") == [("app_disconnected", "applied")]

    calls = simulator.stats.requests_total
    with pytest.raises(DriftDisconnected) as caught:
        sync(settings, END - timedelta(days=1), END)
    message = caught.value.message
    assert "auth exchange" in message and f"org {org_id}" in message and "\n" not in message
    assert simulator.stats.requests_total == calls, "no request is made with a disconnected org's tokens"
    assert query(settings, "SELECT success, error_code FROM raw.exports ORDER BY started_at DESC LIMIT 1") == [
        (False, "app_disconnected")]

    # The refresh token is not spent either, and the CLI says why in one line.
    assert main(["auth", "refresh"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "auth exchange" in error
    for schedule in (nightly_drift_sync, weekly_drift_resync):
        skipped = _schedule_outcome(schedule)
        assert isinstance(skipped, SkipReason) and "auth exchange" in skipped.skip_message

    # Webhooks keep arriving: what needs the API waits in the inbox, a GDPR request does not.
    world = simulator.world
    conversation_id = next(cid for cid, c in world.conversations.items() if c["status"] == "open"
                           and query(settings, "SELECT 1 FROM raw.conversations WHERE conversation_id = ?", [cid]))
    erased_contact = next(c for (c,) in query(settings, "SELECT contact_id FROM raw.contacts ORDER BY 1")
                          if c != world.conversations[conversation_id]["contactId"])
    deliver(simulator, settings, world.set_status(conversation_id, "closed", at_ms=world.now_ms + 60_000)
            + world.request_gdpr_delete(erased_contact))
    waiting = apply_inbox(settings)
    assert len(waiting.files_waiting) == 1 and waiting.events_applied == 1 and waiting.contacts_erased == 1
    assert query(settings, "SELECT count(*) FROM raw.contacts WHERE contact_id = ?", [erased_contact]) == [(0,)]

    auth_exchange(settings, simulator.issue_authorization_code())
    assert auth_status(settings)["disconnected_at"] is None
    assert apply_inbox(settings).events_applied == 1  # the waiting file, now applied
    assert query(settings, "SELECT status FROM raw.status_events WHERE conversation_id = ? AND source = 'webhook'",
                 [conversation_id]) == [("closed",)]
    assert sync(settings, END - timedelta(days=1), END).org_id == org_id
    assert [r.tags[ORG_TAG] for r in _schedule_outcome(nightly_drift_sync)] == [str(org_id)]

    # Replaying the old event does not undo the re-authorization: the tokens are newer.
    applied = next(path for path in settings.processed_dir.glob("*.json") if "app_disconnected" in path.read_text())
    assert replay_event_file(settings, applied, refresh=False)["orgs_disconnected"] == []
    assert disconnection_reason(settings) is None


@both_shapes
def test_app_disconnected_with_a_static_token_is_kept_in_the_state_folder(sim_env, monkeypatch):
    simulator, settings = sim_env
    _disconnect(simulator, settings)

    marks = settings.state_dir / DISCONNECTED_FILENAME
    assert simulator.config.static_access_token not in marks.read_text()
    assert set(json.loads(marks.read_text())) == {str(simulator.config.org_id)}
    assert auth_status(settings)["disconnected_at"] is not None

    async def list_users():
        async with DriftClient.from_settings(settings) as client:
            return await client.list_users()

    with pytest.raises(DriftDisconnected, match="DRIFT_ACCESS_TOKEN"):
        asyncio.run(list_users())
    assert "auth exchange" in _schedule_outcome(nightly_drift_sync).skip_message
    # The mark belongs to the token that was disconnected: a new one is not held back.
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", "a-token-issued-after-reinstalling")
    assert disconnection_reason(Settings.from_env()) is None
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)

    # `auth exchange` re-authorizes the workspace: the static token's mark goes too.
    monkeypatch.setenv("DRIFT_CLIENT_ID", simulator.config.client_id)
    monkeypatch.setenv("DRIFT_CLIENT_SECRET", simulator.config.client_secret)
    auth_exchange(Settings.from_env(), simulator.issue_authorization_code())
    assert not marks.exists()
    assert asyncio.run(list_users())


@pytest.mark.slow
def test_a_sync_of_a_disconnected_workspace_fails_in_one_line_naming_auth_exchange(sim_env, capsys):
    simulator, settings = sim_env
    _disconnect(simulator, settings)
    calls = simulator.stats.requests_total
    assert main(["sync", "--start", "2026-11-14", "--end", "2026-11-15", "--no-dbt"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "disconnected" in error and "auth exchange" in error
    assert simulator.stats.requests_total == calls
