"""Credentials: the encrypted token store, rotating OAuth refresh tokens, and redaction."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from dataclasses import replace
from datetime import datetime, timezone

import httpx
import pytest

from drift_pipeline.drift.auth_status import auth_status
from drift_pipeline.drift.token_store import TokenRecord, TokenStore, token_store_for
from drift_pipeline.drift.authorize import auth_exchange, auth_refresh
from drift_pipeline.drift.client import DriftClient
from drift_pipeline.drift.errors import DriftAuthError, DriftConfigError, DriftError
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer
from drift_pipeline.settings import Settings

END = datetime(2026, 11, 15, tzinfo=timezone.utc)
ORG_ID = 21000001
CLIENT_SECRET = "sim-client-secret"


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    sim = Simulator(SimulatorConfig(seed=7, days=2, conversations_per_day=40, end=END,
                                    rate_limit_per_minute=60_000, access_token_ttl_seconds=7200))
    with SimulatorServer(sim) as server:
        yield sim, server


@pytest.fixture
def sim(served):
    sim, _ = served
    sim.faults.clear()
    sim.latency_seconds = 0.0
    sim.stats.reset()
    return sim


@pytest.fixture
def oauth_settings(served, tmp_path) -> Settings:
    """OAuth settings with an empty token store: only client id and secret."""
    return Settings.from_env({
        "DRIFT_PIPELINE_HOME": str(tmp_path / "home"),
        "DRIFT_API_BASE_URL": served[1].base_url,
        "DRIFT_CLIENT_ID": "sim-client-id",
        "DRIFT_CLIENT_SECRET": CLIENT_SECRET,
    })


def fresh_code(sim) -> str:
    return sim.issue_authorization_code()


def stored(settings: Settings) -> TokenRecord:
    record = token_store_for(settings).get(ORG_ID)
    assert record is not None
    return record


def refresh_is_accepted(base_url: str, refresh_token: str) -> bool:
    """Ask the simulator directly whether a refresh token still works (spends it if so)."""
    answer = httpx.post(f"{base_url}/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": "sim-client-id", "client_secret": CLIENT_SECRET,
    })
    return answer.status_code == 200


def all_ids(sim) -> list[int]:
    conversations = sim.world.conversations.values()
    return [c["id"] for c in sorted(conversations, key=lambda c: (-c["updatedAt"], -c["id"]))]


# -- the store ----------------------------------------------------------------------------------
def test_token_store_is_encrypted_private_and_keyed_per_org(tmp_path):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    store = TokenStore(tmp_path / "state" / "tokens.fernet", key)
    store.save(TokenRecord(org_id=1, access_token="at-one-secret", refresh_token="rt-one-secret", expires_at=1.0))
    store.save(TokenRecord(org_id=2, access_token="at-two-secret", refresh_token="rt-two-secret", expires_at=2.0))

    blob = store.path.read_bytes()
    assert b"secret" not in blob and b"at-one" not in blob
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.get(1).refresh_token == "rt-one-secret"
    assert store.get(2).refresh_token == "rt-two-secret"
    assert store.get().org_id == 2  # the last one saved is current
    assert not list(store.path.parent.glob("*.tmp"))  # temp files renamed away

    with pytest.raises(DriftConfigError, match="cannot be decrypted"):
        TokenStore(store.path, Fernet.generate_key().decode()).load()


def test_missing_credentials_name_the_environment_variables(tmp_path):
    settings = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path)})
    with pytest.raises(DriftConfigError) as raised:
        DriftClient.from_settings(settings)
    message = str(raised.value)
    assert "DRIFT_ACCESS_TOKEN" in message and "DRIFT_CLIENT_ID" in message and "DRIFT_CLIENT_SECRET" in message
    assert raised.value.code == "config"

    only_id = Settings.from_env({"DRIFT_PIPELINE_HOME": str(tmp_path), "DRIFT_CLIENT_ID": "x"})
    with pytest.raises(DriftConfigError, match="DRIFT_CLIENT_SECRET not set"):
        DriftClient.from_settings(only_id)

    no_refresh = replace(only_id, client_secret="y")
    with pytest.raises(DriftConfigError, match="DRIFT_REFRESH_TOKEN"):
        DriftClient.from_settings(no_refresh)


def test_static_token_that_is_rejected_raises_auth_error(sim, served):
    async def run():
        async with DriftClient(served[1].base_url, access_token="not-a-valid-token") as client:
            with pytest.raises(DriftAuthError) as raised:
                await client.list_users()
            return raised.value, client.stats

    error, stats = asyncio.run(run())
    assert error.code == "auth" and error.status == 401
    assert stats.calls == 1 and stats.token_refreshes == 0


# -- OAuth with rotation ------------------------------------------------------------------------
def test_exchange_stores_the_tokens_and_status_shows_no_token_text(sim, oauth_settings):
    status = auth_exchange(oauth_settings, fresh_code(sim))

    assert status["mode"] == "oauth" and status["org_id"] == ORG_ID
    assert status["has_refresh_token"] and status["has_access_token"] and status["expired"] is False
    record = stored(oauth_settings)
    assert record.refresh_token.startswith("sim-rt-")
    assert record.refresh_token not in str(status) and record.access_token not in str(status)
    assert auth_status(oauth_settings) == status


def test_token_expiry_mid_run_rotates_and_persists_the_new_refresh_token(sim, served, oauth_settings):
    base_url = served[1].base_url
    auth_exchange(oauth_settings, fresh_code(sim))
    first = stored(oauth_settings)

    async def run():
        ids: list[int] = []
        async with DriftClient.from_settings(oauth_settings) as client:
            assert client.org_id == ORG_ID
            async for page in client.iter_conversation_pages(limit=10):
                ids += [item["id"] for item in page.items]
                if len(ids) == 20:
                    sim.expire_access_tokens()  # mid-iteration: the next page gets 401
            return ids, client.stats

    ids, stats = asyncio.run(run())
    assert ids == all_ids(sim)
    assert stats.token_refreshes == 1 and stats.calls_by_endpoint["token"] == 1

    second = stored(oauth_settings)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    blob = oauth_settings.token_store_path.read_bytes()
    for token in (first.refresh_token, second.refresh_token, first.access_token, second.access_token):
        assert token.encode() not in blob
    assert stat.S_IMODE(os.stat(oauth_settings.token_store_path).st_mode) == 0o600
    assert not refresh_is_accepted(base_url, first.refresh_token)  # rotated: the old one is dead
    assert refresh_is_accepted(base_url, second.refresh_token)  # the stored one works


def test_concurrent_requests_that_get_401_refresh_once(sim, oauth_settings):
    auth_exchange(oauth_settings, fresh_code(sim))
    conversation_ids = all_ids(sim)[:8]

    async def run():
        async with DriftClient.from_settings(oauth_settings, max_concurrency=8) as client:
            await client.list_users()  # the token is loaded and good
            sim.expire_access_tokens()
            sim.stats.reset()
            results = await asyncio.gather(*(client.get_conversation(cid) for cid in conversation_ids))
            return results, client.stats

    results, stats = asyncio.run(run())
    assert [r["id"] for r in results] == conversation_ids
    assert stats.token_refreshes == 1
    assert sim.stats.by_route["token"] == 1


def test_token_near_expiry_is_refreshed_before_use(sim, oauth_settings):
    auth_exchange(oauth_settings, fresh_code(sim))
    store = token_store_for(oauth_settings)
    store.save(replace(stored(oauth_settings), expires_at=time.time() + 5, obtained_at=time.time() - 7195))
    sim.stats.reset()

    async def run():
        async with DriftClient.from_settings(oauth_settings) as client:
            await client.list_users()
            return client.stats

    stats = asyncio.run(run())
    assert stats.token_refreshes == 1
    assert sim.stats.by_status.get(401, 0) == 0  # refreshed ahead of time, not after a 401


def test_refresh_token_from_the_environment_only_seeds_an_empty_store(sim, served, oauth_settings):
    seed = sim.issue_tokens()["refresh_token"]
    seeded = replace(oauth_settings, refresh_token=seed)

    status = auth_refresh(seeded)  # spends the seed, stores the rotated token under the org
    assert status["org_id"] == ORG_ID
    assert not refresh_is_accepted(served[1].base_url, seed)

    async def run():
        # The environment still holds the dead seed: the stored token must win.
        async with DriftClient.from_settings(seeded) as client:
            await client.auth.refresh(force=True)
            return await client.list_users()

    assert asyncio.run(run())


def test_second_process_adopts_rotated_tokens_instead_of_spending_a_dead_refresh_token(sim, oauth_settings):
    auth_exchange(oauth_settings, fresh_code(sim))

    async def run():
        # Two clients on one store stand for two processes (e.g. two Dagster partitions).
        async with DriftClient.from_settings(oauth_settings) as one, \
                DriftClient.from_settings(oauth_settings) as two:
            await one.list_users()
            await two.list_users()
            sim.expire_access_tokens()
            await one.list_users()  # rotates: the refresh token `two` loaded is now dead
            users = await two.list_users()  # 401, then adopts `one`'s tokens from the store
            return users, one.stats, two.stats

    users, one_stats, two_stats = asyncio.run(run())
    assert users
    assert one_stats.token_refreshes == 1 and two_stats.token_refreshes == 0


def test_rejected_refresh_token_raises_auth_error_that_says_what_to_do(sim, oauth_settings):
    auth_exchange(oauth_settings, fresh_code(sim))
    record = stored(oauth_settings)
    assert refresh_is_accepted(oauth_settings.api_base_url, record.refresh_token)  # spent elsewhere

    with pytest.raises(DriftAuthError, match="auth exchange") as raised:
        auth_refresh(oauth_settings)
    assert "invalid_grant" in str(raised.value)


# -- redaction ----------------------------------------------------------------------------------
def test_no_token_text_reaches_logs_errors_or_reprs(sim, served, oauth_settings, caplog):
    caplog.set_level(logging.DEBUG)
    base_url = served[1].base_url
    auth_exchange(oauth_settings, fresh_code(sim))
    first = stored(oauth_settings)
    texts: list[str] = []

    async def run():
        async with DriftClient.from_settings(oauth_settings) as client:
            async for page in client.iter_conversation_pages(limit=40):
                sim.expire_access_tokens()  # every page after the first needs a refresh
            sim.faults.inject("503", count=1, path="/users/list")
            await client.list_users()
            try:
                await client.get_contact(1)
            except DriftError as error:
                texts.extend([str(error), repr(error)])
            texts.extend([repr(client), repr(client.stats), str(client.stats.as_dict()), repr(client.auth),
                          repr(client.auth.current()), repr(client.limiter())])
            return client.stats

    stats = asyncio.run(run())
    assert stats.token_refreshes >= 1
    last = stored(oauth_settings)

    # A refresh the server refuses, and a static token it refuses.
    assert refresh_is_accepted(base_url, last.refresh_token)
    try:
        auth_refresh(oauth_settings)
    except DriftAuthError as error:
        texts.extend([str(error), repr(error), str(error.__context__), str(error.__cause__)])

    async def static():
        async with DriftClient(base_url, access_token="static-secret-value") as client:
            try:
                await client.list_users()
            except DriftAuthError as error:
                texts.extend([str(error), repr(error), repr(client)])

    asyncio.run(static())
    texts.append(str(auth_status(oauth_settings)))
    texts.append(repr(oauth_settings))

    haystack = caplog.text + "\n".join(texts)
    assert "drift GET /conversations/list" in haystack  # the DEBUG lines were captured
    assert "remaining=" in haystack
    secrets = [first.access_token, first.refresh_token, last.access_token, last.refresh_token,
               CLIENT_SECRET, "static-secret-value"]
    for secret in secrets:
        assert secret not in haystack
    assert "Bearer" not in haystack


# -- token answers and early deaths (shared/drift-api.md, OAuth "(varies)") ----------------------
@pytest.mark.parametrize("expires_in, lifetime", [
    (7200, 7200.0),          # seconds, as the OAuth answer documents
    ("7200", 7200.0),
    (7_200_000, 7200.0),     # milliseconds, as /app/token_info gives it
    (0, None),               # "never expires": unknown, learn from a 401
    (None, None),
    ("soon", None),
    (True, None),
    (-5, None),
])
def test_expires_in_is_read_in_seconds_or_milliseconds_and_zero_means_unknown(expires_in, lifetime):
    from drift_pipeline.drift.token_store import expires_at_from

    expected = None if lifetime is None else 1000.0 + lifetime
    assert expires_at_from(expires_in, 1000.0) == expected


def test_camel_case_token_answers_are_exchanged_and_refreshed(tmp_path):
    sim = Simulator(SimulatorConfig(seed=7, days=1, conversations_per_day=10, end=END, token_answer="camel",
                                    rate_limit_per_minute=60_000))
    with SimulatorServer(sim) as server:
        settings = Settings.from_env({
            "DRIFT_PIPELINE_HOME": str(tmp_path / "home"), "DRIFT_API_BASE_URL": server.base_url,
            "DRIFT_CLIENT_ID": "sim-client-id", "DRIFT_CLIENT_SECRET": CLIENT_SECRET})
        status = auth_exchange(settings, sim.issue_authorization_code())
        assert status["org_id"] == ORG_ID and status["has_refresh_token"] and status["expires_at"]
        first = stored(settings)
        auth_refresh(settings)
        second = stored(settings)
        assert second.refresh_token != first.refresh_token and second.access_token.startswith("sim-at-")


def test_a_token_that_never_expires_is_not_refreshed_on_every_request(tmp_path):
    sim = Simulator(SimulatorConfig(seed=7, days=1, conversations_per_day=10, end=END,
                                    access_token_ttl_seconds=0, rate_limit_per_minute=60_000))
    with SimulatorServer(sim) as server:
        settings = Settings.from_env({
            "DRIFT_PIPELINE_HOME": str(tmp_path / "home"), "DRIFT_API_BASE_URL": server.base_url,
            "DRIFT_CLIENT_ID": "sim-client-id", "DRIFT_CLIENT_SECRET": CLIENT_SECRET})
        auth_exchange(settings, sim.issue_authorization_code())
        assert stored(settings).expires_at is None

        async def run():
            async with DriftClient.from_settings(settings) as client:
                for _ in range(5):
                    await client.list_users()
                return client.stats

        stats = asyncio.run(run())
    assert stats.token_refreshes == 0 and sim.stats.by_route.get("token", 0) == 1  # the exchange only


def test_a_token_revoked_again_right_after_its_refresh_is_refreshed_again(sim, oauth_settings):
    auth_exchange(oauth_settings, fresh_code(sim))
    # The first request's token dies, and so does the one refreshed for its retry.
    sim.faults.inject("expire_token", 2, path="/users/list")

    async def run():
        async with DriftClient.from_settings(oauth_settings) as client:
            users = await client.list_users()
            return users, client.stats

    users, stats = asyncio.run(run())
    assert users and stats.token_refreshes == 2


def test_credentials_that_die_on_every_use_fail_fast_with_a_clear_message(sim, oauth_settings):
    auth_exchange(oauth_settings, fresh_code(sim))
    sim.faults.inject("expire_token", 50, path="/users/list")

    async def run():
        async with DriftClient.from_settings(oauth_settings) as client:
            with pytest.raises(DriftAuthError) as raised:
                await client.list_users()
            return raised.value, client.stats

    error, stats = asyncio.run(run())
    assert stats.token_refreshes == 3  # bounded
    assert "auth exchange" in error.message and "\n" not in error.message
