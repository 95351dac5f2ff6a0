"""The Drift client: paging, retries, rate limits and concurrency, against the bundled simulator
(and, for shapes the simulator does not produce, against httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import httpx
import pytest

from drift_pipeline.drift.client import DriftClient
from drift_pipeline.drift.paging import ConversationPage
from drift_pipeline.drift.session import ClientStats
from drift_pipeline.drift.errors import (
    DriftBadRequest,
    DriftBadResponse,
    DriftNotFound,
    DriftRateLimited,
    DriftServerError,
    DriftTransportError,
)
from drift_pipeline.drift.ratelimit import RateLimiter, RateLimitInfo, backoff_delay, parse_rate_limit_headers
from drift_simulator import Simulator, SimulatorConfig, SimulatorServer

END = datetime(2026, 11, 15, tzinfo=timezone.utc)
FAST_LIMIT = 60_000  # requests/minute: pacing never slows the functional tests down
STATIC_TOKEN = "sim-static-token"


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    sim = Simulator(SimulatorConfig(seed=7, days=2, conversations_per_day=40, end=END,
                                    rate_limit_per_minute=FAST_LIMIT, access_token_ttl_seconds=7200))
    with SimulatorServer(sim) as server:
        yield sim, server


@pytest.fixture
def sim(served):
    sim, _ = served
    sim.faults.clear()
    sim.set_rate_limit(FAST_LIMIT)
    sim.latency_seconds = 0.0
    sim.stats.reset()
    yield sim
    sim.faults.clear()
    sim.latency_seconds = 0.0


@pytest.fixture
def base_url(served):
    return served[1].base_url


class RecordingSleep:
    """Sleeps for real (briefly) and remembers what the client asked for."""

    def __init__(self) -> None:
        self.requested: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        await asyncio.sleep(seconds)


def client_for(base_url: str, **options) -> DriftClient:
    options.setdefault("backoff_base_seconds", 0.01)
    options.setdefault("backoff_cap_seconds", 0.05)
    options.setdefault("rate_limit_per_minute", FAST_LIMIT)
    return DriftClient(base_url, access_token=STATIC_TOKEN, **options)


def newest_first_ids(sim) -> list[int]:
    conversations = sim.world.conversations.values()
    return [c["id"] for c in sorted(conversations, key=lambda c: (-c["updatedAt"], -c["id"]))]


async def collect_pages(client: DriftClient, **kwargs) -> list[ConversationPage]:
    return [page async for page in client.iter_conversation_pages(**kwargs)]


def ids_of(pages: list[ConversationPage]) -> list[int]:
    return [item["id"] for page in pages for item in page.items]


# -- paging -------------------------------------------------------------------------------------
def test_paging_returns_every_conversation_newest_first_without_duplicates(sim, base_url):
    async def run():
        async with client_for(base_url) as client:
            return await collect_pages(client, limit=25), client.stats

    pages, stats = asyncio.run(run())
    assert ids_of(pages) == newest_first_ids(sim)
    assert len(set(ids_of(pages))) == len(sim.world.conversations) == 80
    assert len(pages) >= 4
    assert pages[0].cursor is None and pages[-1].next_cursor is None
    for previous, page in zip(pages, pages[1:]):
        assert page.cursor == previous.next_cursor  # opaque: passed back exactly as received
    assert stats.calls_by_endpoint["list"] == len(pages)


def test_iteration_resumes_from_a_stored_cursor(sim, base_url):
    async def run():
        async with client_for(base_url) as client:
            first = await collect_pages(client, limit=30)
        async with client_for(base_url) as resumed:  # a later run, e.g. after a crash
            rest = await collect_pages(resumed, limit=30, cursor=first[0].next_cursor)
        return first, rest

    first, rest = asyncio.run(run())
    assert rest[0].cursor == first[0].next_cursor
    assert ids_of(first[:1]) + ids_of(rest) == newest_first_ids(sim)


def test_status_filter_is_sent_to_the_api(sim, base_url):
    async def run():
        async with client_for(base_url) as client:
            return await collect_pages(client, status_ids=[2])

    pages = asyncio.run(run())
    closed = {c["id"] for c in sim.world.conversations.values() if c["status"] == "closed"}
    assert set(ids_of(pages)) == closed


def test_messages_are_fetched_across_all_pages_oldest_first(sim, base_url):
    longest = max(sim.world.messages, key=lambda cid: len(sim.world.messages[cid]))

    async def run():
        async with client_for(base_url) as client:
            messages = await client.get_messages(longest)
            pages = [page async for page in client.iter_message_pages(longest)]
            return messages, pages

    messages, pages = asyncio.run(run())
    assert [m["id"] for m in messages] == [m["id"] for m in sim.world.messages[longest]]
    assert sum(len(p.items) for p in pages) == len(messages)


def test_single_resource_calls_return_the_data(sim, base_url):
    conversation_id = newest_first_ids(sim)[0]
    conversation = sim.world.conversations[conversation_id]
    contact_id = conversation["contactId"]
    email = sim.world.contacts[contact_id]["attributes"].get("email")

    async def run():
        async with client_for(base_url) as client:
            detail = await client.get_conversation(conversation_id)
            users = await client.list_users()
            contact = await client.get_contact(contact_id)
            found = await client.find_contacts_by_email(email) if email else []
            transcript = await client.get_transcript(conversation_id)
            report = await client.conversation_report(sim.world.start_ms, sim.world.now_ms,
                                                      ["firstCloseAt", "timeToCloseMillis"])
            return detail, users, contact, found, transcript, report, client.stats

    detail, users, contact, found, transcript, report, stats = asyncio.run(run())
    assert detail["id"] == conversation_id and "participants" in detail
    assert {u["id"] for u in users} == {u["id"] for u in sim.world.users}
    assert contact["id"] == contact_id
    if email:
        assert [c["id"] for c in found] == [contact_id]
    assert transcript == sim.world.transcript(conversation_id)
    assert "data" in report
    assert set(stats.calls_by_endpoint) >= {"detail", "users", "contact", "transcript", "reports"}


def test_missing_contact_raises_drift_not_found(sim, base_url):
    async def run():
        async with client_for(base_url) as client:
            with pytest.raises(DriftNotFound) as raised:
                await client.get_contact(1)
            assert await client.find_contacts_by_email("nobody@example.invalid") == []
            return raised.value

    error = asyncio.run(run())
    assert error.code == "not_found" and error.status == 404


# -- retries ------------------------------------------------------------------------------------
def test_429_waits_for_retry_after_then_succeeds(sim, base_url):
    sim.faults.inject("429", count=2, path="/conversations/list", retry_after=1)
    sleep = RecordingSleep()

    async def run():
        async with client_for(base_url, sleep=sleep) as client:
            return await collect_pages(client, limit=100), client.stats

    pages, stats = asyncio.run(run())
    assert ids_of(pages) == newest_first_ids(sim)
    assert stats.responses_429 == 2 and stats.retries == 2
    # Retry-After is honoured: every retry waited at least the second the server asked for.
    assert len([s for s in sleep.requested if s >= 1.0]) >= 2
    assert sim.stats.responses_429 == 2


def test_server_errors_and_connection_resets_are_retried(sim, base_url):
    for kind in ("500", "503", "reset"):
        sim.faults.inject(kind, count=1, path="/conversations/list")

    async def run():
        async with client_for(base_url) as client:
            return await collect_pages(client, limit=50), client.stats

    pages, stats = asyncio.run(run())
    assert ids_of(pages) == newest_first_ids(sim)
    assert stats.server_errors == 2 and stats.transport_errors == 1 and stats.retries == 3


def test_malformed_json_is_retried(sim, base_url):
    sim.faults.inject("malformed", count=2, path="/conversations/list")

    async def run():
        async with client_for(base_url) as client:
            return await collect_pages(client, limit=50), client.stats

    pages, stats = asyncio.run(run())
    assert ids_of(pages) == newest_first_ids(sim)
    assert stats.malformed_responses == 2 and stats.retries == 2


def test_slow_answers_time_out_and_are_retried(sim, base_url):
    conversation_id = newest_first_ids(sim)[0]
    sim.faults.inject("slow", count=1, path=f"/conversations/{conversation_id}", delay=2)

    async def run():
        async with client_for(base_url, timeout_seconds=0.5) as client:
            return await client.get_conversation(conversation_id), client.stats

    detail, stats = asyncio.run(run())
    assert detail["id"] == conversation_id
    assert stats.transport_errors == 1 and stats.retries == 1


@pytest.mark.parametrize(
    ("kind", "error_type", "code"),
    [("503", DriftServerError, "server_error"), ("reset", DriftTransportError, "transport"),
     ("malformed", DriftBadResponse, "bad_response"), ("429", DriftRateLimited, "rate_limited")],
)
def test_retries_are_bounded_and_end_in_a_typed_error(sim, base_url, kind, error_type, code):
    options = {"retry_after": 0} if kind == "429" else {}
    sim.faults.inject(kind, count=10, path="/users/list", **options)

    async def run():
        async with client_for(base_url, max_retries=2) as client:
            with pytest.raises(error_type) as raised:
                await client.list_users()
            return raised.value, client.stats

    error, stats = asyncio.run(run())
    assert error.code == code
    assert stats.calls == 3 and stats.retries == 2
    assert "/users/list" in str(error)


def test_retry_after_beyond_the_limit_we_accept_fails_fast(sim, base_url):
    sim.faults.inject("429", count=1, path="/users/list", retry_after=3600)

    async def run():
        async with client_for(base_url, max_retry_after_seconds=60) as client:
            with pytest.raises(DriftRateLimited) as raised:
                await client.list_users()
            return raised.value, client.stats

    error, stats = asyncio.run(run())
    assert error.retry_after == 3600 and stats.calls == 1


# -- concurrency and rate limits ----------------------------------------------------------------
def test_requests_in_flight_never_exceed_max_concurrency(sim, base_url):
    sim.latency_seconds = 0.05
    conversation_ids = newest_first_ids(sim)[:24]

    async def run():
        async with client_for(base_url, max_concurrency=3) as client:
            await asyncio.gather(*(client.get_conversation(cid) for cid in conversation_ids))
            return client.stats

    stats = asyncio.run(run())
    assert stats.calls_by_endpoint["detail"] == 24
    assert 2 <= sim.stats.peak_in_flight <= 3


def test_client_learns_the_limit_from_headers_and_tracks_remaining(sim, base_url):
    sim.set_rate_limit(1200)

    async def run():
        async with client_for(base_url, rate_limit_per_minute=600) as client:
            await client.list_users()
            return client.stats, client.limiter().limit_per_minute

    stats, learned = asyncio.run(run())
    assert stats.rate_limit == 1200 and learned == 1200
    assert stats.min_remaining is not None


def test_pacing_gets_no_429s_when_the_bucket_is_nearly_full(sim, base_url):
    # Someone else (another process) has just spent almost all of the org's burst allowance:
    # 40 requests flat out would overflow it, paced by the headers they must not.
    sim.set_rate_limit(600)
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {STATIC_TOKEN}"}) as other:
        for _ in range(95):
            other.get("/users/list")
    sim.stats.reset()

    async def run():
        async with client_for(base_url, rate_limit_per_minute=600, max_concurrency=8) as client:
            ids = newest_first_ids(sim)[:40]
            await asyncio.gather(*(client.get_conversation(cid) for cid in ids))
            return client.stats

    stats = asyncio.run(run())
    assert stats.responses_429 == 0 and sim.stats.responses_429 == 0
    assert stats.calls == 40 and stats.min_remaining < 20


# -- the pacer on its own (virtual clock) -------------------------------------------------------
class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def paced(limiter_options: dict, requests: int, before=None, each=None) -> float:
    clock = VirtualClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep, **limiter_options)
    if before:
        before(limiter)

    async def run():
        for _ in range(requests):
            await limiter.acquire()
            if each:
                each(limiter)

    started = clock.now
    asyncio.run(run())
    return clock.now - started


def test_pacer_spaces_requests_at_the_advertised_limit():
    # 60/min at full utilization: one a second.
    elapsed = paced({"limit_per_minute": 600, "utilization": 1.0},
                    21, before=lambda lim: lim.observe(RateLimitInfo(limit=60), 200))
    assert 19.0 <= elapsed <= 20.5


def test_pacer_slows_down_while_remaining_stays_low():
    healthy = paced({"limit_per_minute": 600}, 40,
                    each=lambda lim: lim.observe(RateLimitInfo(limit=600, remaining=90), 200))
    starved = paced({"limit_per_minute": 600}, 40,
                    each=lambda lim: lim.observe(RateLimitInfo(limit=600, remaining=5), 200))
    assert 3.5 < healthy < 4.5  # 40 at 0.97 * 10/s
    assert starved > 2 * healthy


def test_pacer_waits_for_a_slot_to_drain_when_remaining_is_zero():
    elapsed = paced({"limit_per_minute": 600}, 2, before=lambda lim: lim.observe(RateLimitInfo(limit=600, remaining=0), 200))
    assert elapsed >= 0.1


def test_pacer_holds_every_request_for_retry_after():
    elapsed = paced({"limit_per_minute": 600}, 1, before=lambda lim: lim.on_rate_limited(7.0))
    assert elapsed >= 7.0


def test_rate_limit_headers_are_read_tolerantly():
    now = 1_800_000_000.0
    info = parse_rate_limit_headers(httpx.Headers({"X-RateLimit-Limit": "600", "x-ratelimit-remaining": " 12 ",
                                                   "X-RateLimit-Reset": str(int(now) + 5), "Retry-After": "3"}),
                                    now=now)
    assert (info.limit, info.remaining, info.reset, info.retry_after) == (600, 12, now + 5, 3)
    odd = parse_rate_limit_headers(httpx.Headers({"RateLimit-Limit": "600, 600;w=60", "X-RateLimit-Remaining": "n/a",
                                                  "Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), now=now)
    assert odd.limit == 600 and odd.remaining is None and odd.retry_after == 0
    assert parse_rate_limit_headers(httpx.Headers({}), now=now).empty


def test_backoff_uses_full_jitter_below_a_cap():
    delays = [backoff_delay(attempt, base=0.5, cap=4.0) for attempt in range(8) for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert min(delays) < 0.5 < max(delays)


# -- cursor spellings the simulator does not use ------------------------------------------------
def mock_client(handler, **options) -> DriftClient:
    return DriftClient("https://api.example.test", access_token="mock-token-value",
                       transport=httpx.MockTransport(handler), backoff_base_seconds=0.01, **options)


def test_page_token_and_links_next_cursors_are_followed():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        params = request.url.params
        if "page_token" in params and params["page_token"] == "t2==":
            return httpx.Response(200, json={"data": [{"id": 2}], "links": {"next": "/conversations/list?after=opaque%2F3"}})
        if params.get("after") == "opaque/3":
            return httpx.Response(200, json={"data": [{"id": 3}], "links": {}})
        return httpx.Response(200, json={"data": [{"id": 1}], "pagination": {"more": True, "page_token": "t2=="}})

    async def run():
        async with mock_client(handler) as client:
            return await collect_pages(client)

    pages = asyncio.run(run())
    assert ids_of(pages) == [1, 2, 3]
    assert pages[1].cursor == "t2=="
    assert pages[2].cursor == "https://api.example.test/conversations/list?after=opaque%2F3"
    assert seen[2] == pages[2].cursor  # the link is followed as given, not rebuilt


def test_links_next_to_another_host_is_refused():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": 1}], "links": {"next": "https://evil.example/steal"}})

    async def run():
        async with mock_client(handler) as client:
            with pytest.raises(DriftBadResponse, match="evil.example, which is neither .* nor a Drift API host"):
                await collect_pages(client)

    asyncio.run(run())


def test_a_cursor_that_repeats_stops_the_iteration():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": 1}], "pagination": {"more": True, "next": "same"}})

    async def run():
        async with mock_client(handler) as client:
            with pytest.raises(DriftBadResponse, match="already returned"):
                await collect_pages(client)

    asyncio.run(run())


def test_stats_are_plain_data():
    stats = ClientStats()
    stats.calls_by_endpoint["list"] += 2
    assert json.loads(json.dumps(stats.as_dict()))["calls_by_endpoint"] == {"list": 2}


# -- the shapes Drift's docs and sample code show (shared/drift-api.md, "(varies)") ----------------
def test_links_next_on_the_other_drift_host_is_rebased_onto_the_configured_base():
    requested: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request.url)
        if request.url.params.get("page_token") == "p2":
            return httpx.Response(200, json={"data": [{"id": 2}], "links": {
                "self": "https://api.drift.com/conversations/list?limit=100&page_token=p2"}})
        return httpx.Response(200, json={"data": [{"id": 1}], "links": {
            "self": "https://api.drift.com/conversations/list?limit=100",
            "next": "https://api.drift.com/conversations/list?limit=100&page_token=p2"}})

    async def run():
        async with DriftClient("https://driftapi.com", access_token="mock-token-value",
                               transport=httpx.MockTransport(handler)) as client:
            return await collect_pages(client)

    pages = asyncio.run(run())
    assert ids_of(pages) == [1, 2]
    # The cursor is stored as Drift gave it; the request went to the configured host.
    assert pages[1].cursor == "https://api.drift.com/conversations/list?limit=100&page_token=p2"
    assert [u.host for u in requested] == ["driftapi.com", "driftapi.com"]
    assert requested[1].path == "/conversations/list" and requested[1].params["page_token"] == "p2"


def test_simulator_current_links_on_api_drift_com_load_every_page_through_loopback(sim, base_url):
    assert not sim.config.legacy and sim.config.link_host == "https://api.drift.com"

    async def run():
        async with client_for(base_url) as client:
            return await collect_pages(client, limit=10)

    pages = asyncio.run(run())
    assert ids_of(pages) == newest_first_ids(sim)
    assert all(p.cursor.startswith("https://api.drift.com/") for p in pages[1:])
    assert sim.stats.by_route["list"] == len(pages)


def test_simulator_legacy_cursors_load_every_page():
    legacy = Simulator(SimulatorConfig(seed=7, days=2, conversations_per_day=40, end=END, shapes="legacy",
                                       rate_limit_per_minute=FAST_LIMIT))
    with SimulatorServer(legacy) as server:
        async def run():
            async with client_for(server.base_url) as client:
                return await collect_pages(client, limit=100)

        pages = asyncio.run(run())
    assert ids_of(pages) == newest_first_ids(legacy)
    assert all(len(p.items) <= 50 for p in pages) and len(pages) > 1
    assert not any(p.cursor and p.cursor.startswith("http") for p in pages)


def test_a_foreign_next_link_is_refused_without_sending_the_token_and_after_the_page():
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"data": [{"id": 1}], "links": {"next": "https://drift.example.org/x"}})

    async def run():
        got = []
        async with mock_client(handler) as client:
            with pytest.raises(DriftBadResponse) as raised:
                async for page in client.iter_conversation_pages():
                    got.append(page)  # the caller commits this page before the link is followed
        return got, raised.value

    got, error = asyncio.run(run())
    assert ids_of(got) == [1] and hosts == ["api.example.test"]
    assert "drift.example.org" in error.message and "\n" not in error.message


@pytest.mark.parametrize("body, reason", [
    ({"errors": [{"type": "invalid_request", "message": "statusId must be 1, 2 or 3", "param": "statusId"}]},
     "invalid_request: statusId must be 1, 2 or 3"),
    ({"error": {"type": "invalid_request", "message": "statusId must be 1, 2 or 3"}},
     "invalid_request: statusId must be 1, 2 or 3"),
    ({"error": "invalid_request", "error_description": "statusId must be 1, 2 or 3"},
     "invalid_request: statusId must be 1, 2 or 3"),
])
def test_both_error_body_forms_keep_their_reason(body, reason):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=body)

    async def run():
        async with mock_client(handler) as client:
            with pytest.raises(DriftBadRequest) as raised:
                await client.get_conversation(1)
        return raised.value

    error = asyncio.run(run())
    assert error.message == f"GET /conversations/1 answered 400: {reason}"


# -- one budget for every process of an org ----------------------------------------------------
_BUDGET_WORKER = """
import asyncio, os, sys, time
from pathlib import Path
from drift_pipeline.drift.client import DriftClient
from drift_pipeline.settings import Settings

async def main(ready_dir, calls):
    async with DriftClient.from_settings(Settings.from_env()) as client:
        # Both workers start together however long each took to import: a second after the
        # later of them said it was ready (the same instant for both).
        (ready_dir / str(os.getpid())).touch()
        while len(list(ready_dir.iterdir())) < 2:
            await asyncio.sleep(0.05)
        start_at = max(p.stat().st_mtime for p in ready_dir.iterdir()) + 1.0
        await asyncio.sleep(max(0.0, start_at - time.time()))
        for _ in range(calls):
            await client.list_users()
        print(time.time() - start_at, client.stats.responses_429)

asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
"""


def test_two_processes_of_one_org_share_one_budget_without_429s_and_neither_starves(
        home, make_simulator, monkeypatch):
    """A webhook re-fetch and a scheduled sync run in different processes: together they stay
    under the org's limit (here 300/min, Drift's 600 halved), and each gets its share.

    Each process makes a fixed number of calls, so a slow machine cannot change what is
    counted: it can only make the run longer, and the test bounds the time from below."""
    import subprocess
    import sys

    from drift_pipeline.settings import Settings

    simulator, server = make_simulator(seed=3, days=1, conversations_per_day=5, rate_limit_per_minute=300)
    monkeypatch.setenv("DRIFT_API_BASE_URL", server.base_url)
    monkeypatch.setenv("DRIFT_ACCESS_TOKEN", simulator.config.static_access_token)
    calls = 20
    ready = home.parent / "ready"
    ready.mkdir()
    other = subprocess.Popen([sys.executable, "-c", _BUDGET_WORKER, str(ready), str(calls)],
                             stdout=subprocess.PIPE, text=True)
    output = subprocess.run([sys.executable, "-c", _BUDGET_WORKER, str(ready), str(calls)],
                            stdout=subprocess.PIPE, text=True, check=True, timeout=180).stdout
    other_output, _ = other.communicate(timeout=120)
    assert other.returncode == 0
    (seconds_a, rate_limited_a), (seconds_b, rate_limited_b) = (
        (float(out.split()[0]), int(out.split()[1])) for out in (output, other_output))
    assert rate_limited_a == rate_limited_b == 0 and simulator.stats.responses_429 == 0
    # One budget of 5 calls/s with a second's burst: 40 calls take at least (40 - 5) / 5 = 7 s.
    # Two budgets would have let each process's 20 calls through in (20 - 5) / 5 = 3 s.
    per_second = 300 / 60
    assert max(seconds_a, seconds_b) >= (2 * calls - per_second) / per_second - 0.5, (seconds_a, seconds_b)
    # Neither starves: a process served only after the other finished would take twice as long.
    assert min(seconds_a, seconds_b) >= 0.6 * max(seconds_a, seconds_b), (seconds_a, seconds_b)
    assert list(Settings.from_env().state_dir.glob("ratelimit-*-default"))
