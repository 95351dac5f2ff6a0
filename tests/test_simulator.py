"""The Drift simulator behaves like the API in shared/drift-api.md and generates the edge cases."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from drift_simulator import (
    DriftWorld,
    Simulator,
    SimulatorConfig,
    SimulatorServer,
)

END = datetime(2026, 11, 15, tzinfo=UTC)
END_MS = int(END.timestamp() * 1000)
DAY_MS = 86_400_000
STATIC = {"Authorization": "Bearer sim-static-token"}


def small_config(**overrides) -> SimulatorConfig:
    return SimulatorConfig(**{"days": 2, "conversations_per_day": 40, "end": END, **overrides})


@pytest.fixture
def world() -> DriftWorld:
    return DriftWorld(small_config())


@pytest.fixture
def simulator(world: DriftWorld) -> Simulator:
    return Simulator(world=world)


@pytest.fixture
def server(simulator: Simulator):
    with SimulatorServer(simulator) as running:
        yield running


def asgi(simulator: Simulator, method: str, path: str, **kwargs) -> httpx.Response:
    """One request through httpx.ASGITransport (no sockets)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=simulator.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def next_token(body: dict) -> str | None:
    """The next page's cursor in either shape: `links.next` (current) or `pagination` (legacy)."""
    link = (body.get("links") or {}).get("next")
    if link:
        return httpx.URL(link).params["page_token"]
    if "pagination" in body:
        assert body["pagination"]["more"] is True
        return body["pagination"]["next"]
    return None


def list_all(simulator: Simulator, limit: int = 25, **params) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"page_token": cursor} if cursor else {})}
        body = asgi(simulator, "GET", "/conversations/list", params=query, headers=STATIC).json()
        pages.append(body["data"])
        cursor = next_token(body)
        if cursor is None:
            return pages


def chat(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "chat"]


# ---------------------------------------------------------------------- determinism and shape
def test_same_seed_builds_the_same_world_and_another_seed_does_not():
    first, second = DriftWorld(small_config()), DriftWorld(small_config())
    assert first.conversations == second.conversations
    assert first.messages == second.messages
    assert first.contacts == second.contacts
    assert first.advance(120) == second.advance(120)
    assert DriftWorld(small_config(seed=8)).messages != first.messages


def test_default_world_has_fourteen_days_of_three_hundred_conversations():
    world = DriftWorld(SimulatorConfig(end=END))
    assert len(world.conversations) == 14 * 300
    assert min(c["createdAt"] for c in world.conversations.values()) >= END_MS - 14 * DAY_MS
    assert max(c["updatedAt"] for c in world.conversations.values()) < END_MS


def test_messages_are_strictly_ordered_and_updated_at_follows_the_last_event(world: DriftWorld):
    for cid, conversation in world.conversations.items():
        times = [m["createdAt"] for m in world.messages[cid]]
        assert times == sorted(set(times))
        history = world.status_history[cid]
        assert history[0] == ("open", conversation["createdAt"])
        assert conversation["updatedAt"] == max(times + [at for _, at in history])
        assert conversation["updatedAt"] <= world.now_ms
        assert conversation["status"] == history[-1][0]
        assert sum(1 for status, _ in history if status == "closed") <= 2
        if conversation["status"] == "closed":
            assert conversation["updatedAt"] == history[-1][1]


def test_history_holds_conversations_reopened_before_anyone_synced():
    """Closed, reopened and closed again (or open again) inside the generated history: their
    first close is only known to Drift's reports, never to a first sync."""
    world = DriftWorld(small_config(days=3, seed=11))
    reclosed = [cid for cid, history in world.status_history.items()
                if [status for status, _ in history][:4] == ["open", "closed", "open", "closed"]]
    open_again = [cid for cid, history in world.status_history.items()
                  if [status for status, _ in history] == ["open", "closed", "open"]]
    assert len(reclosed) >= 2 and open_again
    for cid in reclosed + open_again:
        metrics = world.conversation_metrics(cid)
        assert metrics["firstCloseAt"] == world.status_history[cid][1][1]
        assert metrics["firstCloseAt"] < world.conversations[cid]["updatedAt"]


def test_message_ids_increase_with_time_across_the_workspace(world: DriftWorld):
    everything = sorted((m for thread in world.messages.values() for m in thread), key=lambda m: m["id"])
    times = [m["createdAt"] for m in everything]
    assert times == sorted(times)
    assert all(m["id"] > 2**31 for m in everything)


def test_small_world_contains_every_edge_case(world: DriftWorld):
    bots = {u["id"] for u in world.users if u["bot"]}
    assert len(bots) == 2 and len(world.users) == 10
    counts: Counter = Counter()
    for cid, thread in world.messages.items():
        conversation = world.conversations[cid]
        chats = chat(thread)
        bot_chats = [m for m in chats if m["author"]["bot"]]
        agent_chats = [m for m in chats if m["author"]["type"] == "user" and not m["author"]["bot"]]
        contact_chats = [m for m in chats if m["author"]["type"] == "contact"]
        assert all(m["author"]["id"] in bots for m in bot_chats)
        if bot_chats and thread[0] is bot_chats[0]:
            counts["bot_speaks_first"] += 1
        if bot_chats and any(m["createdAt"] > bot_chats[0]["createdAt"] for m in agent_chats):
            counts["handed_off"] += 1
        if bot_chats and not agent_chats:
            counts["bot_only"] += 1
        if not agent_chats:
            counts["no_agent_reply"] += 1
        if any(m["type"] == "private_note" for m in thread):
            counts["private_note"] += 1
        if any("preMessages" in m.get("attributes", {}) for m in contact_chats):
            counts["pre_messages"] += 1
        if agent_chats and contact_chats and agent_chats[0]["createdAt"] < contact_chats[0]["createdAt"]:
            counts["proactive"] += 1
        for edit in (m for m in thread if m["type"] == "edit"):
            target = next(m for m in thread if m["id"] == edit["editedMessageId"])
            assert target["type"] == "chat" and target["createdAt"] < edit["createdAt"]
            counts[f"edit_{edit['editType']}"] += 1
            first_reply = next((m for m in agent_chats if contact_chats and m["createdAt"] >= contact_chats[0]["createdAt"]), None)
            if edit["editType"] == "delete" and target is first_reply:
                counts["deleted_first_reply"] += 1
        if len(thread) > 50:
            counts["long"] += 1
        if conversation["updatedAt"] // DAY_MS > conversation["createdAt"] // DAY_MS:
            counts["updated_on_a_later_day"] += 1
        since_midnight = conversation["updatedAt"] % DAY_MS
        if since_midnight <= 60_000:
            counts["just_after_midnight"] += 1
        if DAY_MS - since_midnight <= 60_000:
            counts["just_before_midnight"] += 1
        counts[f"status_{conversation['status']}"] += 1
    for case in ("bot_speaks_first", "handed_off", "bot_only", "no_agent_reply", "private_note", "pre_messages",
                 "proactive", "edit_delete", "edit_replace_body", "deleted_first_reply", "long",
                 "updated_on_a_later_day", "just_after_midnight", "just_before_midnight",
                 "status_open", "status_closed", "status_pending"):
        assert counts[case] > 0, case
    assert len({c["contactId"] for c in world.conversations.values()}) < len(world.conversations)
    assert all(c["attributes"]["email"].endswith("@example.com") for c in world.contacts.values())


# ---------------------------------------------------------------------- conversations API
def test_list_pages_are_newest_first_complete_and_disjoint(simulator: Simulator, world: DriftWorld):
    pages = list_all(simulator, limit=7)
    items = [item for page in pages for item in page]
    assert all(len(page) == 7 for page in pages[:-1])
    assert [i["id"] for i in items] == [c["id"] for c in sorted(
        world.conversations.values(), key=lambda c: (c["updatedAt"], c["id"]), reverse=True)]
    assert set(items[0]) == {"id", "status", "contactId", "inboxId", "createdAt", "updatedAt"}


def test_list_clamps_limit_to_one_hundred():
    simulator = Simulator(small_config(conversations_per_day=60))
    body = asgi(simulator, "GET", "/conversations/list", params={"limit": 1000}, headers=STATIC).json()
    assert len(body["data"]) == 100 and next_token(body)


def test_current_shape_links_the_next_page_absolutely_on_drifts_public_host():
    simulator = Simulator(small_config())
    body = asgi(simulator, "GET", "/conversations/list", params={"limit": 5, "statusId": 2},
                headers=STATIC).json()
    assert "pagination" not in body
    link = httpx.URL(body["links"]["next"])
    assert (link.scheme, link.host, link.path) == ("https", "api.drift.com", "/conversations/list")
    assert link.params["limit"] == "5" and link.params["statusId"] == "2" and link.params["page_token"]
    assert httpx.URL(body["links"]["self"]).host == "api.drift.com"


def test_legacy_shape_pages_with_an_opaque_next_cursor_and_fifty_at_most():
    simulator = Simulator(small_config(shapes="legacy", conversations_per_day=60))
    body = asgi(simulator, "GET", "/conversations/list", params={"limit": 1000}, headers=STATIC).json()
    assert len(body["data"]) == 50 and "links" not in body
    assert body["pagination"]["more"] is True and body["pagination"]["next"]


def test_older_conversations_listing_pages_fifty_at_most_with_a_pagination_cursor(simulator: Simulator,
                                                                                  world: DriftWorld):
    first = asgi(simulator, "GET", "/conversations", params={"limit": 1000}, headers=STATIC).json()
    assert len(first["data"]) == 50 and "links" not in first
    assert first["pagination"]["more"] is True
    ids, cursor = [i["id"] for i in first["data"]], first["pagination"]["next"]
    while cursor:
        body = asgi(simulator, "GET", "/conversations", params={"next": cursor}, headers=STATIC).json()
        assert len(body["data"]) <= 25  # the default page size: the limit is not carried in the cursor
        ids += [i["id"] for i in body["data"]]
        cursor = (body.get("pagination") or {}).get("next")
    assert ids == [c["id"] for c in sorted(
        world.conversations.values(), key=lambda c: (c["updatedAt"], c["id"]), reverse=True)]
    assert simulator.stats.by_route["list_older"] == 1 + -(-(len(ids) - 50) // 25)


def test_users_by_id_answers_a_map_of_at_most_twenty(simulator: Simulator, world: DriftWorld):
    first, second = world.users[0]["id"], world.users[1]["id"]
    body = asgi(simulator, "GET", "/users", params={"userId": [first, second, 1]}, headers=STATIC).json()
    assert body == {"data": {str(first): world.users[0], str(second): world.users[1]}}
    every = asgi(simulator, "GET", "/users", headers=STATIC).json()["data"]
    assert sorted(every) == sorted(str(u["id"]) for u in world.users)
    too_many = asgi(simulator, "GET", "/users", params={"userId": list(range(21))}, headers=STATIC)
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["param"] == "userId"


def test_requests_to_paths_the_simulator_does_not_serve_are_counted(simulator: Simulator):
    missing = asgi(simulator, "GET", "/teams/org", headers=STATIC)
    assert missing.status_code == 404 and missing.json()["errors"][0]["type"] == "not_found"
    asgi(simulator, "GET", "/_sim/nothing-here")
    stats = simulator.stats.snapshot()
    assert stats["by_route"] == {"unrouted": 1} and stats["by_status"] == {"404": 1}


def test_list_clamps_limit_and_filters_on_status(simulator: Simulator, world: DriftWorld):
    body = asgi(simulator, "GET", "/conversations/list", params={"limit": 1000}, headers=STATIC).json()
    assert len(body["data"]) == min(100, len(world.conversations))
    default = asgi(simulator, "GET", "/conversations/list", headers=STATIC).json()
    assert len(default["data"]) == 25
    pages = list_all(simulator, limit=5, statusId=[1, 3])
    statuses = {item["status"] for page in pages for item in page}
    expected = sum(1 for c in world.conversations.values() if c["status"] != "closed")
    assert statuses == {"open", "pending"} and sum(map(len, pages)) == expected
    bad = asgi(simulator, "GET", "/conversations/list", params={"statusId": 9}, headers=STATIC)
    assert bad.status_code == 400 and bad.json()["errors"][0]["type"] == "validation_error"


def test_list_cursor_stays_valid_while_conversations_change(simulator: Simulator, world: DriftWorld):
    first = asgi(simulator, "GET", "/conversations/list", params={"limit": 10}, headers=STATIC).json()
    remaining_before = {c["id"] for c in world.conversations.values()} - {i["id"] for i in first["data"]}
    touched = sorted(remaining_before)[:3]
    for cid in touched:
        world.add_message(cid, body="<p>back again</p>")
    rest, cursor = [], next_token(first)
    while cursor:
        body = asgi(simulator, "GET", "/conversations/list", params={"limit": 10, "page_token": cursor},
                    headers=STATIC).json()
        rest += [i["id"] for i in body["data"]]
        cursor = next_token(body)
    assert len(rest) == len(set(rest))
    assert set(rest) == remaining_before - set(touched)


def test_conversation_detail_and_unknown_ids(simulator: Simulator, world: DriftWorld):
    cid = next(iter(world.conversations))
    detail = asgi(simulator, "GET", f"/conversations/{cid}", headers=STATIC).json()["data"]
    assert detail == world.conversations[cid]
    for path in ("/conversations/1", "/conversations/1/messages", "/contacts/1"):
        missing = asgi(simulator, "GET", path, headers=STATIC)
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["type"] == "not_found"


def test_messages_page_at_fifty_oldest_first(simulator: Simulator, world: DriftWorld):
    cid = max(world.messages, key=lambda c: len(world.messages[c]))
    assert len(world.messages[cid]) > 50
    ids, cursor, pages = [], None, 0
    while True:
        body = asgi(simulator, "GET", f"/conversations/{cid}/messages",
                    params={"next": cursor} if cursor else None, headers=STATIC).json()
        page = body["data"]["messages"]
        assert len(page) <= 50
        ids += [m["id"] for m in page]
        pages += 1
        if "pagination" not in body:
            break
        assert len(page) == 50
        cursor = body["pagination"]["next"]
    assert ids == [m["id"] for m in world.messages[cid]]
    assert pages == (len(ids) + 49) // 50


def test_users_contacts_and_transcript(simulator: Simulator, world: DriftWorld):
    users = asgi(simulator, "GET", "/users/list", headers=STATIC).json()["data"]
    assert sum(u["bot"] for u in users) == 2 and {"id", "name", "availability", "bot"} <= set(users[0])
    contact = next(iter(world.contacts.values()))
    assert asgi(simulator, "GET", f"/contacts/{contact['id']}", headers=STATIC).json()["data"] == contact
    found = asgi(simulator, "GET", "/contacts", params={"email": contact["attributes"]["email"].upper()},
                 headers=STATIC).json()["data"]
    assert [c["id"] for c in found] == [contact["id"]]
    assert asgi(simulator, "GET", "/contacts", params={"email": "nobody@nowhere.test"}, headers=STATIC).json() == {"data": []}
    cid = next(c for c, thread in world.messages.items() if chat(thread))
    transcript = asgi(simulator, "GET", f"/conversations/{cid}/transcript", headers=STATIC)
    assert transcript.headers["content-type"].startswith("text/plain")
    assert transcript.text.count("\n") == len(chat(world.messages[cid]))


def test_reports_compute_close_times_from_status_history(simulator: Simulator, world: DriftWorld):
    query = {"filters": [{"property": "updatedAt", "operation": "BETWEEN", "values": [END_MS - DAY_MS, END_MS]}],
             "metrics": ["timeToCloseMillis", "firstCloseAt"]}
    body = asgi(simulator, "POST", "/reports/conversations", json=query, headers=STATIC).json()
    expected = {cid for cid, c in world.conversations.items() if END_MS - DAY_MS <= c["updatedAt"] <= END_MS}
    assert body["count"] == len(expected) == len(body["data"])
    for row in body["data"]:
        conversation = world.conversations[row["conversationId"]]
        closes = [at for status, at in world.status_history[conversation["id"]] if status == "closed"]
        time_to_close, first_close = row["metrics"]
        # "If a metric is not present, will return as "NaN"" (Drift's conversation-reporting docs).
        assert first_close == (closes[0] if closes else "NaN")
        assert time_to_close == (closes[0] - conversation["createdAt"] if closes else "NaN")
    limited = asgi(simulator, "POST", "/reports/conversations", json=query, headers=STATIC)
    assert limited.headers["X-RateLimit-Limit"] == "60"


def test_reports_answer_agent_metrics_by_drifts_definitions(simulator: Simulator, world: DriftWorld):
    """Drift's agent is a human user; its first agent message is the first of the conversation
    (an opener before the contact included, a message deleted later included, a note not);
    its response time runs from the routing (a bot's hand-off), not from the contact's message."""
    agent, bot = world.agent_ids[0], world.bot_ids[0]
    t0 = END_MS + 60_000
    cid, _ = world.new_conversation(t0, body=None)
    world.add_message(cid, author_type="user", author_id=agent, at_ms=t0 + 1_000)  # opener
    world.add_message(cid, at_ms=t0 + 5_000)  # the contact writes
    world.add_message(cid, author_type="user", author_id=bot, bot=True, at_ms=t0 + 6_000)
    world.add_message(cid, author_type="user", author_id=bot, bot=True, at_ms=t0 + 8_000, routes=True)
    world.add_message(cid, author_type="user", author_id=agent, type="private_note", at_ms=t0 + 9_000)
    [deleted] = [p["data"] for p in world.add_message(cid, author_type="user", author_id=agent, at_ms=t0 + 20_000)
                 if p["type"] == "new_message"]
    world.add_message(cid, author_type="user", author_id=agent, type="edit", edited_message_id=deleted["id"],
                      edit_type="delete", at_ms=t0 + 30_000)
    world.add_message(cid, author_type="user", author_id=agent, at_ms=t0 + 40_000)
    world.set_status(cid, "closed", at_ms=t0 + 50_000)
    quiet, _ = world.new_conversation(t0 + 60_000, related_playbook_id=881_002)  # the contact only
    world.add_message(quiet, author_type="user", author_id=bot, bot=True, at_ms=t0 + 61_000)
    query = {"filters": [{"property": "createdAt", "operation": "BETWEEN", "values": [t0, t0 + 60_000]}],
             "metrics": ["firstAgentMessageAt", "timeToAgentResponseMillis", "firstCloseAt", "timeToCloseMillis",
                         "relatedPlaybookId"]}
    body = asgi(simulator, "POST", "/reports/conversations", json=query, headers=STATIC).json()
    assert body["count"] == 2
    rows = {row["conversationId"]: row["metrics"] for row in body["data"]}
    assert rows[cid] == [t0 + 1_000, 12_000, t0 + 50_000, 50_000, "NaN"]
    assert rows[quiet] == ["NaN", "NaN", "NaN", "NaN", 881_002]
    # Without a hand-off the clock starts at the contact's first message.
    plain, _ = world.new_conversation(t0 + 70_000)
    world.add_message(plain, author_type="user", author_id=agent, at_ms=t0 + 73_500)
    assert world.conversation_metrics(plain)["timeToAgentResponseMillis"] == 3_500


# ---------------------------------------------------------------------- auth
def test_requests_without_a_valid_token_get_401(simulator: Simulator):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic c2ltOnNpbQ=="}):
        answer = asgi(simulator, "GET", "/users/list", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["type"] == "authentication_error"


def token_request(simulator: Simulator, **form) -> httpx.Response:
    form = {"client_id": "sim-client-id", "client_secret": "sim-client-secret", **form}
    return asgi(simulator, "POST", "/oauth2/token", data=form)


def test_oauth_code_exchange_then_refresh_tokens_rotate(simulator: Simulator):
    granted = token_request(simulator, grant_type="authorization_code", code="sim-auth-code")
    assert granted.status_code == 200
    tokens = granted.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 7200 and tokens["orgId"] == 21000001
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert asgi(simulator, "GET", "/users/list", headers=bearer).status_code == 200
    assert token_request(simulator, grant_type="authorization_code", code="sim-auth-code").status_code == 400

    rotated = token_request(simulator, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != tokens["refresh_token"]
    reused = token_request(simulator, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert reused.json()["errors"][0]["type"] == "invalid_grant"
    wrong_secret = token_request(simulator, grant_type="refresh_token",
                                 refresh_token=rotated.json()["refresh_token"], client_secret="guess")
    assert wrong_secret.status_code == 401


def test_expired_access_tokens_get_401_but_refresh_and_static_token_still_work(simulator: Simulator):
    tokens = simulator.issue_tokens()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    simulator.expire_access_tokens()
    assert asgi(simulator, "GET", "/users/list", headers=bearer).status_code == 401
    assert asgi(simulator, "GET", "/users/list", headers=STATIC).status_code == 200
    fresh = token_request(simulator, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert asgi(simulator, "GET", "/users/list",
                headers={"Authorization": f"Bearer {fresh['access_token']}"}).status_code == 200


# ---------------------------------------------------------------------- rate limit, faults, stats (real HTTP)
def test_hammering_a_tiny_limit_gets_429_with_rate_limit_headers(simulator: Simulator, server: SimulatorServer):
    simulator.set_rate_limit(6)  # a burst of one request, then one every 10 s
    with httpx.Client(base_url=server.base_url, headers=STATIC) as client:
        answers = [client.get("/users/list") for _ in range(4)]
    assert answers[0].status_code == 200
    limited = [a for a in answers if a.status_code == 429]
    assert limited and simulator.stats.responses_429 == len(limited)
    for answer in answers:
        assert answer.headers["X-RateLimit-Limit"] == "6"
        assert int(answer.headers["X-RateLimit-Remaining"]) >= 0
        assert int(answer.headers["X-RateLimit-Reset"]) > 1_600_000_000
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["errors"][0]["type"] == "rate_limit_exceeded"


def test_each_fault_kind_is_seen_by_an_httpx_client(simulator: Simulator, server: SimulatorServer):
    faults = simulator.faults
    with httpx.Client(base_url=server.base_url, headers=STATIC, timeout=10) as client:
        faults.inject("429", retry_after=3, path="/users/list")
        throttled = client.get("/users/list")
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"

        faults.inject("500")
        faults.inject("503", count=2)
        assert [client.get("/users/list").status_code for _ in range(4)] == [500, 503, 503, 200]

        faults.inject("reset", path="/conversations/list")
        assert client.get("/users/list").status_code == 200  # path did not match
        with pytest.raises(httpx.TransportError):
            client.get("/conversations/list")
        assert client.get("/conversations/list").status_code == 200

        faults.inject("malformed")
        garbled = client.get("/users/list")
        assert garbled.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            garbled.json()

        faults.inject("slow", delay=0.05)
        assert client.get("/users/list").status_code == 200

        oauth = simulator.issue_tokens()
        oauth_headers = {"Authorization": f"Bearer {oauth['access_token']}"}
        faults.inject("expire_token")
        assert client.get("/users/list").status_code == 200  # the static token is not an OAuth token
        assert client.get("/users/list", headers=oauth_headers).status_code == 401
        assert client.get("/users/list", headers=oauth_headers).status_code == 401
    assert faults.pending == 0
    assert simulator.stats.faults == Counter({"429": 1, "500": 1, "503": 2, "reset": 1, "malformed": 1,
                                              "slow": 1, "expire_token": 1})
    assert simulator.stats.resets == 1


def test_token_endpoint_is_only_faulted_when_the_path_says_so(simulator: Simulator):
    simulator.faults.inject("500")
    assert token_request(simulator, grant_type="authorization_code", code="sim-auth-code").status_code == 200
    simulator.faults.clear()
    simulator.faults.inject("503", path="/oauth2/token")
    assert token_request(simulator, grant_type="authorization_code", code="sim-auth-code").status_code == 503


def test_reset_fault_without_a_socket_is_a_transport_error(simulator: Simulator):
    simulator.faults.inject("reset")
    with pytest.raises(httpx.TransportError):
        asgi(simulator, "GET", "/users/list", headers=STATIC)


def test_stats_count_routes_statuses_and_concurrency(world: DriftWorld):
    simulator = Simulator(world=world, latency_seconds=0.1)
    cid = next(iter(world.conversations))

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=simulator.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim", headers=STATIC) as client:
            answers = await asyncio.gather(
                client.get("/conversations/list"), client.get(f"/conversations/{cid}"),
                client.get(f"/conversations/{cid}/messages"), client.get("/users/list"),
                client.get("/conversations/404"))
            return [a.status_code for a in answers]

    assert asyncio.run(burst()) == [200, 200, 200, 200, 404]
    stats = simulator.stats
    assert stats.requests_total == 5 and stats.in_flight == 0
    assert stats.peak_in_flight >= 2
    assert stats.by_route == Counter({"list": 1, "detail": 2, "messages": 1, "users": 1})
    assert stats.by_status == Counter({200: 4, 404: 1})
    stats.reset()
    assert stats.requests_total == 0 and not stats.by_route


# ---------------------------------------------------------------------- virtual clock and webhooks
@pytest.mark.parametrize("shapes", ["current", "legacy"])
def test_advance_emits_payloads_consistent_with_the_world(shapes):
    world = DriftWorld(small_config(shapes=shapes))
    before = set(world.conversations)
    payloads = world.advance(12 * 60)
    assert world.now_ms == END_MS + 12 * 60 * 60_000
    kinds = Counter(p["type"] for p in payloads)
    assert kinds["new_conversation"] > 0 and kinds["new_message"] > 0 and kinds["conversation_status_updated"] > 0
    assert kinds["conversation_participant_added"] > 0
    times = []
    for payload in payloads:
        if shapes == "legacy":
            assert payload["token"] == "sim-webhook-token" and payload["orgId"] == world.org_id
        else:  # the token travels in the X-Verification-Token header only
            assert "token" not in payload and payload["orgId"] == str(world.org_id)
        data = payload["data"]
        if payload["type"] == "new_conversation":
            assert data["id"] not in before and data["id"] in world.conversations
            times.append(data["createdAt"])
        elif payload["type"] == "new_message":
            assert data in world.messages[data["conversationId"]]
            times.append(data["createdAt"])
        elif payload["type"] == "conversation_status_updated":
            history = world.status_history[data["conversationId"]]
            if shapes == "legacy":
                assert (data["status"], data["changedAt"]) in history
                times.append(data["changedAt"])
            else:
                assert "changedAt" not in data and data["status"] in {status for status, _ in history}
        else:
            assert set(data["addedParticipants"]) <= set(world.conversations[data["conversationId"]]["participants"])
            assert ("changedAt" in data) == (shapes == "legacy")
            if shapes == "legacy":
                times.append(data["changedAt"])
    assert all(END_MS < at <= world.now_ms for at in times)
    assert times == sorted(times)
    assert all(c["updatedAt"] <= world.now_ms for c in world.conversations.values())


def test_contact_message_on_a_closed_conversation_reopens_it(world: DriftWorld):
    cid = next(c for c, conv in world.conversations.items() if conv["status"] == "closed")
    payloads = world.add_message(cid, body="<p>Actually, one more question</p>")
    assert [p["type"] for p in payloads] == ["new_message", "conversation_status_updated"]
    assert payloads[1]["data"] == {"conversationId": cid, "status": "open"}  # current: no changedAt
    assert world.conversations[cid]["status"] == "open"
    assert world.conversations[cid]["updatedAt"] == world.now_ms
    assert world.status_history[cid][-2:] == [("closed", world.status_history[cid][-2][1]), ("open", world.now_ms)]
    closed = world.set_status(cid, "closed", at_ms=world.now_ms + 60_000)
    assert closed[0]["data"]["status"] == "closed" and world.status_history[cid][-1] == ("closed", world.now_ms)
    assert world.set_status(cid, "closed") == []


@pytest.mark.parametrize("shapes, named", [("current", "endUserId"), ("legacy", "contactId")])
def test_contact_events_name_the_contact_as_the_configured_shapes_do(shapes, named):
    world = DriftWorld(small_config(shapes=shapes))
    contact_id = next(iter(world.contacts))
    old_email = world.contacts[contact_id]["attributes"]["email"]
    [identified] = world.identify_contact(contact_id)
    assert identified["type"] == "contact_identified" and identified["data"] == {named: contact_id}
    [updated] = world.update_contact(contact_id, at_ms=world.now_ms + 1000, email="moved@example.com")
    assert updated["data"][named] == contact_id
    assert updated["data"]["timestamp"] == world.now_ms
    assert updated["data"]["diff"] == [{"name": "email", "previous": old_email, "updated": "moved@example.com"}]
    assert world.contact_by_email("moved@example.com")["id"] == contact_id
    assert world.contact_by_email(old_email) is None
    assert world.update_contact(contact_id, email="moved@example.com") == []  # nothing changed
    [by_email] = world.identify_contact(contact_id, by_email=True)
    assert by_email["data"] == ({"endUserId": "moved@example.com"} if shapes == "current"
                                else {"email": "moved@example.com"})


@pytest.mark.parametrize("by_email", [False, True])
def test_a_gdpr_request_deletes_the_contact_and_names_it_by_end_user_id(by_email):
    world = DriftWorld(small_config())
    contact_id = next(iter(world.contacts))
    email = world.contacts[contact_id]["attributes"]["email"]
    [payload] = world.request_gdpr_delete(contact_id, by_email=by_email)
    assert payload["type"] == "gdpr_delete_requested"
    assert payload["data"] == {"endUserId": email if by_email else contact_id}
    assert contact_id not in world.contacts and world.contact_by_email(email) is None


@pytest.mark.parametrize("shapes", ["current", "legacy"])
def test_app_disconnected_has_no_data_in_the_current_shapes(shapes):
    world = DriftWorld(small_config(shapes=shapes))
    [payload] = world.disconnect_app()
    assert payload["type"] == "app_disconnected"
    assert ("data" in payload) == (shapes == "legacy")


def test_new_conversation_and_agent_reply_emit_the_documented_payloads(world: DriftWorld):
    cid, payloads = world.new_conversation(email="new.person@example.com", name="New Person")
    assert [p["type"] for p in payloads] == ["new_conversation", "new_message"]
    assert payloads[0]["data"]["id"] == cid and payloads[1]["data"]["conversationId"] == cid
    agent = world.agent_ids[0]
    reply = world.add_message(cid, author_type="user", author_id=agent, body="<p>Hi!</p>")
    assert [p["type"] for p in reply] == ["conversation_participant_added", "new_message"]
    assert reply[0]["data"]["addedParticipants"] == [agent]
    assert world.contact_by_email("new.person@example.com")["id"] == world.conversations[cid]["contactId"]


def test_control_endpoints_advance_and_deliver_webhooks(simulator: Simulator, server: SimulatorServer):
    received: list[dict] = []
    tokens: list[str | None] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server naming)
            tokens.append(self.headers.get("X-Verification-Token"))
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert client.get("/_sim/health").json()["status"] == "ok"
            url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks"
            payloads = client.post("/_sim/advance", params={"minutes": 240, "deliver": url}).json()
            assert payloads and received == payloads
            assert set(tokens) == {simulator.config.webhook_token}  # Drift's header, every time
            assert client.post("/_sim/faults", json={"kind": "503", "count": 1}).status_code == 200
            assert client.get("/users/list", headers=STATIC).status_code == 503
            stats = client.get("/_sim/stats").json()
            assert stats["by_route"] == {"users": 1} and stats["by_status"] == {"503": 1}
            assert client.post("/_sim/faults", json={"kind": "nope"}).status_code == 400
    finally:
        receiver.shutdown()
        receiver.server_close()
