"""The simulated Drift workspace: seeded data plus a virtual clock.

Each conversation is generated as a *plan*: a timeline of events (creation, messages, status
changes) relative to its creation time. Building the world applies, in global time order,
every event before `config.end`; the rest waits in a heap, so `advance()` continues the same
conversations (and starts new ones) exactly as they were planned. Applying events in time order
is also what makes message ids increase with time across the whole workspace.

The `conversations`, `messages`, `users` and `contacts` attributes hold the API shapes, so the
HTTP layer serialises them as they are; `status_history` is the truth that Drift itself never
exposes (only via webhooks and the reports endpoint).
"""

from __future__ import annotations

import heapq
import html
import math
import random
import re
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import content
from .marketing import MarketingMixin

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

STATUSES = ("open", "closed", "pending")
STATUS_IDS = {1: "open", 2: "closed", 3: "pending"}

# Relative conversation volume per UTC hour: quiet nights, heavier 13-22h (EU afternoon + US day).
HOUR_WEIGHTS = (2, 1.5, 1, 1, 1, 1, 1.5, 2, 3, 4, 5, 6, 9, 10, 10, 10, 10, 10, 10, 9, 9, 8, 6, 3)

_CONVERSATION_ID_BASE = 3_100_000_000
_MESSAGE_ID_BASE = 9_200_000_000
_CONTACT_ID_BASE = 5_400_000_000
_AGENT_ID_BASE = 7_100_001
_BOT_ID_BASE = 7_199_001
_INBOX_IDS = (201_001, 201_002, 201_003)
_PLAYBOOK_IDS = (881_001, 881_002, 881_003)

_EV_CREATE, _EV_MESSAGE, _EV_STATUS = 0, 1, 2
_TAG_RE = re.compile(r"<[^>]+>")
_DEFAULT_CONTEXT = {"ip": "203.0.113.1", "userAgent": content.USER_AGENTS[0]}


@dataclass
class SimulatorConfig:
    """Knobs of the simulated workspace and its API. Same config (and seed) -> same data."""

    seed: int = 7
    days: int = 14
    conversations_per_day: int = 300
    end: datetime | None = None  # UTC; data spans [end - days, end). None -> now floored to the minute
    org_id: int = 21000001
    rate_limit_per_minute: int = 600  # <= 0 disables the limit
    reports_rate_limit_per_minute: int = 60
    client_id: str = "sim-client-id"
    client_secret: str = "sim-client-secret"
    static_access_token: str = "sim-static-token"  # always accepted, never expires
    authorization_code: str = "sim-auth-code"  # accepted once by grant_type=authorization_code
    access_token_ttl_seconds: int = 7200
    webhook_token: str = "sim-webhook-token"
    # Which of Drift's documented shapes to serve (shared/drift-api.md, "(varies)"):
    # "current" (the default) is what Drift's current docs and sample code show: absolute
    # `links.next` URLs on `link_host` with `page_token`, webhook tokens in the
    # `X-Verification-Token` header only, contact events naming `endUserId`, status and
    # participant events without `changedAt`, `orgId` as a string. "legacy" is the older set:
    # `pagination.next` cursors, the token in the webhook body, `changedAt` always sent.
    shapes: str = "current"
    link_host: str = "https://api.drift.com"  # host of absolute links; clients re-base it
    # OAuth answers: "snake" (`access_token`, as Drift's docs show) or "camel" (`accessToken`,
    # what Drift's sample app reads). A ttl of 0 means "never expires" (answered as 0).
    token_answer: str = "snake"
    # Share of closed conversations in the generated history that were reopened and closed
    # again (a few stay open) before the pipeline ever looks: only Drift's reports know
    # their first close.
    history_reopen_share: float = 0.08
    # Scopes the app lacks in this workspace: their endpoints answer 403 (e.g.
    # {"playbook_read"}: `/playbooks/list` is refused, the rest works).
    missing_scopes: frozenset[str] = field(default_factory=frozenset)
    # Whether `advance` returns `new_meeting` payloads besides the conversation events (off by
    # default: tests written before meetings existed read every payload `advance` returns).
    meeting_webhooks: bool = False

    def __post_init__(self) -> None:
        if self.shapes not in ("current", "legacy"):
            raise ValueError(f"shapes must be 'current' or 'legacy', got {self.shapes!r}")
        if self.token_answer not in ("snake", "camel"):
            raise ValueError(f"token_answer must be 'snake' or 'camel', got {self.token_answer!r}")
        self.missing_scopes = frozenset(self.missing_scopes)

    @property
    def legacy(self) -> bool:
        return self.shapes == "legacy"

    def webhook_headers(self) -> dict[str, str]:
        """The headers Drift sends with every webhook delivery of this workspace: the
        verification token in `X-Verification-Token` (legacy bodies carry it too, which is
        harmless). Everything that POSTs the world's payloads to a receiver uses these."""
        return {"Content-Type": "application/json", "X-Verification-Token": self.webhook_token}

    def end_ms(self) -> int:
        end = self.end or datetime.now(UTC)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        end = end.astimezone(UTC).replace(second=0, microsecond=0)
        return int(end.timestamp() * 1000)


def ms_to_datetime(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def _deck(rng: random.Random, population: list[int], share: float, minimum: int) -> set[int]:
    """Exactly max(minimum, share*n) members of population, so small worlds keep every case."""
    k = min(len(population), max(minimum, round(share * len(population))))
    return set(rng.sample(population, k))


class _Plan:
    """A conversation's timeline, offsets in ms from its creation; built by `DriftWorld._plan`."""

    __slots__ = ("events", "t", "rng", "message_count")

    def __init__(self, rng: random.Random) -> None:
        self.events: list[tuple[int, int, dict | str]] = []
        self.t = 0
        self.rng = rng
        self.message_count = 0

    def wait(self, low_s: float, high_s: float) -> None:
        self.t += max(1000, int(self.rng.uniform(low_s, high_s) * 1000))

    def message(self, author_type: str, author_id: int | None, body: str, *, bot: bool = False,
                type: str = "chat", **extra: Any) -> dict:
        spec = {"author_type": author_type, "author_id": author_id, "bot": bot, "type": type, "body": body}
        spec.update(extra)
        self.events.append((self.t, _EV_MESSAGE, spec))
        self.message_count += 1
        return spec

    def status(self, status: str) -> None:
        self.events.append((self.t, _EV_STATUS, status))


class DriftWorld(MarketingMixin):
    """All data of one simulated Drift org plus its virtual clock; deterministic from the seed.

    Thread-safe: every mutation and every read the HTTP layer does holds `lock`.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.org_id = self.config.org_id
        self.lock = threading.RLock()
        self._rng = random.Random(self.config.seed)
        end_ms = self.config.end_ms()
        self.start_ms = end_ms - self.config.days * DAY_MS
        self.now_ms = end_ms

        self.conversations: dict[int, dict] = {}
        self.messages: dict[int, list[dict]] = {}
        self.users: list[dict] = []
        self.contacts: dict[int, dict] = {}
        self.status_history: dict[int, list[tuple[str, int]]] = {}
        # When a bot handed the conversation to a human (its hand-off message): Drift's "routed
        # in". Conversations without a hand-off are routed when the contact first writes.
        self.routed_at: dict[int, int] = {}

        self._contacts_by_email: dict[str, int] = {}
        self._contact_context: dict[int, dict] = {}
        self._contact_pool: list[int] = []
        self._next_conversation_id = _CONVERSATION_ID_BASE
        self._next_message_id = _MESSAGE_ID_BASE
        self._next_contact_id = _CONTACT_ID_BASE
        self._seq = 0
        self._pending: list[tuple[int, int, int, int, Any]] = []  # (at, seq, conversation, kind, spec)
        self._index: list[tuple[int, int]] = []  # (-updatedAt, -id): updatedAt desc, id desc
        self._index_dirty = True

        self._make_users()
        self.agent_ids = [u["id"] for u in self.users if not u["bot"]]
        self.bot_ids = [u["id"] for u in self.users if u["bot"]]
        self._build_history(end_ms)
        self._init_marketing(end_ms)  # its own random stream: the conversations stay as they were

    # ------------------------------------------------------------------ users
    def _make_users(self) -> None:
        created = self.start_ms - 400 * DAY_MS
        for i, (name, alias) in enumerate(content.AGENTS):
            self.users.append(self._user(_AGENT_ID_BASE + i, name, alias, False, created + i * DAY_MS,
                                         ["admin", "agent"][i > 0], content.TIME_ZONES[i % len(content.TIME_ZONES)]))
        for i, (name, alias) in enumerate(content.BOTS):
            self.users.append(self._user(_BOT_ID_BASE + i, name, alias, True, created, "bot", "UTC"))

    def _user(self, user_id: int, name: str, alias: str, bot: bool, created: int, role: str, tz: str) -> dict:
        handle = name.lower().replace(" ", ".")
        return {
            "id": user_id, "orgId": self.org_id, "name": name, "alias": alias,
            "email": f"{handle}@{'bots.' if bot else ''}drift-sim.example.com",
            "phone": None if bot else f"+1555{user_id % 10_000_000:07d}",
            "locale": "en-US",
            "availability": "AVAILABLE" if bot else self._rng.choice(["AVAILABLE", "OFFLINE", "ON_CALL"]),
            "role": role, "timeZone": tz, "avatarUrl": f"https://avatars.example.com/{user_id}.png",
            "verified": True, "bot": bot, "createdAt": created, "updatedAt": created + 30 * DAY_MS,
        }

    # ------------------------------------------------------------------ plans
    def _random_features(self) -> dict:
        rng = self._rng
        roll = rng.random()
        flow = "bot_handoff" if roll < 0.24 else "bot_only" if roll < 0.40 else "unanswered" if roll < 0.48 else "agent"
        replied = flow in ("agent", "bot_handoff")
        final = rng.random()
        return {
            "flow": flow,
            "silent_bot": flow == "bot_only" and rng.random() < 0.12,
            "pre": flow in ("agent", "unanswered") and rng.random() < 0.2,
            "proactive": flow == "agent" and rng.random() < 0.06,
            "notes": (replied and rng.random() < 0.2) or rng.random() < 0.03,
            "delete": (rng.choice(["first_reply", "other"]) if replied and rng.random() < 0.07 else None),
            "replace": replied and rng.random() < 0.04,
            "transfer": replied and rng.random() < 0.05,
            "long": replied and rng.random() < 0.06,
            "multiday": rng.random() < 0.06,
            "final": "closed" if final < 0.72 else "pending" if final < 0.84 else "open",
        }

    def _deck_features(self, n: int) -> list[dict]:
        """Features for the generated history; decks guarantee every case even in tiny worlds."""
        rng = self._rng
        everyone = list(range(n))
        handoff = _deck(rng, everyone, 0.24, 2)
        rest = [i for i in everyone if i not in handoff]
        bot_only = _deck(rng, rest, 0.16 / 0.76, 2)
        rest = [i for i in rest if i not in bot_only]
        unanswered = _deck(rng, rest, 0.08 / 0.60, 2)
        flows = ["bot_handoff" if i in handoff else "bot_only" if i in bot_only
                 else "unanswered" if i in unanswered else "agent" for i in everyone]
        replied = [i for i in everyone if flows[i] in ("agent", "bot_handoff")]
        agent_only = [i for i in everyone if flows[i] == "agent"]
        contact_first = [i for i in everyone if flows[i] in ("agent", "unanswered")]
        silent = _deck(rng, sorted(bot_only), 0.12, 1)
        pre = _deck(rng, contact_first, 0.2, 2)
        proactive = _deck(rng, agent_only, 0.06, 2)
        notes = _deck(rng, replied, 0.2, 2) | _deck(rng, [i for i in everyone if flows[i] == "unanswered"], 0.1, 0)
        deletes = sorted(_deck(rng, replied, 0.07, 3))
        delete_kind = {i: ("first_reply" if k % 2 == 0 else "other") for k, i in enumerate(deletes)}
        replace = _deck(rng, replied, 0.04, 1)
        transfer = _deck(rng, replied, 0.05, 1)
        long_ = _deck(rng, replied, 0.06, 2)
        multiday = _deck(rng, [i for i in everyone if i not in long_], 0.06, 2)
        closed = _deck(rng, everyone, 0.72, 3)
        pending = _deck(rng, [i for i in everyone if i not in closed], 0.12 / 0.28, 2)
        return [{
            "flow": flows[i], "silent_bot": i in silent, "pre": i in pre, "proactive": i in proactive,
            "notes": i in notes, "delete": delete_kind.get(i), "replace": i in replace,
            "transfer": i in transfer, "long": i in long_, "multiday": i in multiday,
            "final": "closed" if i in closed else "pending" if i in pending else "open",
        } for i in everyone]

    def _response_delay(self) -> tuple[float, float]:
        seconds = min(3 * 3600.0, max(8.0, self._rng.lognormvariate(math.log(80), 1.2)))
        return seconds, seconds * 1.05

    def _plan(self, f: dict) -> _Plan:
        """One conversation's timeline for the given features (see `_random_features`)."""
        rng = self._rng
        p = _Plan(rng)
        agent = rng.choice(self.agent_ids)
        bot = rng.choice(self.bot_ids)
        flow = f["flow"]
        long_target = rng.randint(60, 130) if f["long"] else 0
        agent_chats: list[dict] = []

        def contact_says(body: str, **extra: Any) -> dict:
            return p.message("contact", None, body, **extra)

        if flow in ("bot_handoff", "bot_only"):
            p.message("user", bot, rng.choice(content.BOT_WELCOMES), bot=True, buttons=list(content.BOT_BUTTONS))
            if f["silent_bot"]:
                p.wait(30, 180)
                p.message("user", bot, content.BOT_NUDGES[0], bot=True)
            else:
                p.wait(5, 90)
                contact_says(rng.choice(content.CONTACT_OPENERS))
                for _ in range(rng.randint(1, 3)):
                    p.wait(1, 3)
                    p.message("user", bot, rng.choice(content.BOT_REPLIES), bot=True)
                    p.wait(5, 60)
                    contact_says(rng.choice(content.CONTACT_REPLIES))
                p.wait(1, 3)
                if flow == "bot_only":
                    p.message("user", bot, rng.choice(content.BOT_GOODBYES), bot=True)
                else:
                    # The hand-off routes the conversation to the inbox: Drift's agent response
                    # clock starts here (`conversation_metrics`).
                    p.message("user", bot, content.BOT_HANDOFFS[0], bot=True, routes=True)
        else:
            if f["proactive"]:
                agent_chats.append(p.message("user", agent, rng.choice(content.AGENT_OUTREACH)))
                p.wait(20, 1200)
            extra = {}
            if f["pre"]:
                extra["attributes"] = {"preMessages": [
                    {"body": rng.choice(content.PRE_MESSAGES), "sender": {"type": "user", "id": bot, "bot": True}}]}
            contact_says(rng.choice(content.CONTACT_OPENERS), **extra)
            if rng.random() < 0.3:
                p.wait(5, 60)
                contact_says(rng.choice(content.CONTACT_REPLIES))

        if flow in ("agent", "bot_handoff"):
            rounds = rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5))
            multiday_round = rng.randrange(rounds) if f["multiday"] else -1
            note_round = rng.randrange(rounds) if f["notes"] else -1
            r = 0
            while r < rounds or p.message_count < long_target:
                speaker = agent
                if f["transfer"] and r >= 1:
                    speaker = self.agent_ids[(self.agent_ids.index(agent) + 1) % len(self.agent_ids)]
                if r == multiday_round:
                    p.wait(14 * 3600, 40 * 3600)
                elif r == 0:
                    p.wait(*self._response_delay())
                elif long_target:
                    p.wait(8, 90)
                else:
                    p.wait(20, 600)
                first_reply = r == 0
                reply = p.message("user", speaker, rng.choice(content.AGENT_REPLIES))
                agent_chats.append(reply)
                if first_reply and f["delete"] == "first_reply":
                    p.wait(5, 40)
                    p.message("user", speaker, "", type="edit", target=reply, editType="delete")
                    p.wait(5, 30)
                    agent_chats.append(p.message("user", speaker, content.AGENT_CORRECTIONS[0]))
                if r == note_round:
                    p.wait(5, 120)
                    p.message("user", speaker, rng.choice(content.PRIVATE_NOTES), type="private_note")
                if rng.random() < 0.25:
                    p.wait(5, 60)
                    agent_chats.append(p.message("user", speaker, rng.choice(content.AGENT_REPLIES)))
                r += 1
                if r < rounds or p.message_count < long_target or rng.random() < 0.6:
                    p.wait(8, 90) if long_target else p.wait(15, 400)
                    contact_says(rng.choice(content.CONTACT_REPLIES))
            if f["delete"] == "other":
                candidates = agent_chats[1:] or agent_chats
                p.wait(10, 120)
                target = rng.choice(candidates)
                p.message("user", target["author_id"], "", type="edit", target=target, editType="delete")
            if f["replace"]:
                p.wait(10, 120)
                target = rng.choice(agent_chats)
                p.message("user", target["author_id"], content.REPLACED_BODIES[0], type="edit",
                          target=target, editType="replace_body")
        elif flow == "unanswered":
            for _ in range(rng.randint(0, 2)):
                p.wait(14 * 3600, 30 * 3600) if f["multiday"] else p.wait(30, 900)
                contact_says(rng.choice(content.CONTACT_REPLIES))
            if f["notes"]:
                p.wait(60, 600)
                p.message("user", agent, rng.choice(content.PRIVATE_NOTES), type="private_note")
        elif f["multiday"]:  # a bot conversation the contact comes back to the next day
            p.wait(14 * 3600, 30 * 3600)
            contact_says(rng.choice(content.CONTACT_REPLIES))

        if f["final"] == "closed":
            p.wait(60, 3600)
            p.status("closed")
        elif f["final"] == "pending":
            p.wait(30, 1800)
            p.status("pending")
        return p

    def _creation_spec(self, flow: str, pre: bool) -> dict:
        rng = self._rng
        tags = rng.sample(content.TAGS, rng.choice((0, 0, 1, 1, 2)))
        playbook = rng.choice(_PLAYBOOK_IDS) if flow.startswith("bot") or pre else None
        return {"inbox": rng.choice(_INBOX_IDS), "playbook": playbook, "tags": [dict(t) for t in tags]}

    def _schedule(self, conversation_id: int, t0: int, plan: _Plan, creation: dict | None,
                  into: list) -> None:
        if creation is not None:
            self._seq += 1
            into.append((t0, self._seq, conversation_id, _EV_CREATE, creation))
        for offset, kind, spec in plan.events:
            self._seq += 1
            into.append((t0 + offset, self._seq, conversation_id, kind, spec))

    # ------------------------------------------------------------------ history
    def _build_history(self, end_ms: int) -> None:
        rng = self._rng
        cpd = self.config.conversations_per_day
        cum = []
        total = 0.0
        for w in HOUR_WEIGHTS:
            total += w
            cum.append(total)
        starts: list[int] = []
        for day in range(self.config.days):
            day_start = self.start_ms + day * DAY_MS
            base_hour = (day_start // HOUR_MS) % 24
            # Weights follow the UTC hour of each hour slot of this 24 h slice.
            slot_cum, acc = [], 0.0
            for h in range(24):
                acc += HOUR_WEIGHTS[(base_hour + h) % 24]
                slot_cum.append(acc)
            for slot in rng.choices(range(24), cum_weights=slot_cum, k=cpd):
                starts.append(day_start + slot * HOUR_MS + rng.randrange(HOUR_MS))
        starts.sort()
        n = len(starts)
        features = self._deck_features(n)
        plans = [self._plan(f) for f in features]
        self._add_history_reopens(features, plans)
        self._anchor_near_midnight(starts, features, plans, end_ms)

        order = sorted(range(n), key=lambda i: starts[i])
        events: list = []
        for i in order:
            self._next_conversation_id += 1
            creation = self._creation_spec(features[i]["flow"], features[i]["pre"])
            self._schedule(self._next_conversation_id, starts[i], plans[i], creation, events)
        events.sort()
        cut = bisect_right(events, (end_ms - 1, float("inf")))
        for at, _, cid, kind, spec in events[:cut]:
            self._apply(cid, kind, spec, at, None)
        self._pending = events[cut:]
        heapq.heapify(self._pending)

    def _add_history_reopens(self, features: list[dict], plans: list[_Plan]) -> None:
        """Some closed conversations come back hours later (a contact follow-up reopens them), get
        an answer and are closed again; a quarter of them stay open. A separate random stream
        keeps every other generated value as it was without these."""
        share = self.config.history_reopen_share
        closed = [i for i, f in enumerate(features)
                  if f["final"] == "closed" and not f["long"] and not f["multiday"]]
        if share <= 0 or not closed:
            return
        rng = random.Random(self.config.seed * 7_919 + 17)
        chosen = sorted(_deck(rng, closed, share, 3))
        for k, i in enumerate(chosen):
            plan = plans[i]
            world_rng, plan.rng = plan.rng, rng
            agent = next((spec["author_id"] for _, kind, spec in reversed(plan.events)
                          if kind == _EV_MESSAGE and spec["author_type"] == "user" and not spec["bot"]
                          and spec["author_id"] is not None), rng.choice(self.agent_ids))
            plan.wait(6 * 3600, 30 * 3600)  # long after the close: never anchored near midnight
            plan.message("contact", None, rng.choice(content.CONTACT_REPLIES))
            plan.wait(*self._response_delay_from(rng))
            plan.message("user", agent, rng.choice(content.AGENT_REPLIES))
            if k % 4 != 1:
                plan.wait(60, 3600)
                plan.status("closed")
            plan.rng = world_rng

    def _response_delay_from(self, rng: random.Random) -> tuple[float, float]:
        seconds = min(3 * 3600.0, max(8.0, rng.lognormvariate(math.log(80), 1.2)))
        return seconds, seconds * 1.05

    def _anchor_near_midnight(self, starts: list[int], features: list[dict], plans: list[_Plan],
                              end_ms: int) -> None:
        """Moves a few short conversations so their last event lands within 60 s of midnight UTC."""
        rng = self._rng
        first_midnight = (self.start_ms // DAY_MS + 1) * DAY_MS
        used: set[int] = set()
        for midnight in range(first_midnight, end_ms + 1, DAY_MS):
            sides = (-1, 1) if midnight + MINUTE_MS < end_ms else (-1,)
            for side in sides:
                target = midnight - rng.randint(1000, 59_000) if side < 0 else midnight + rng.randint(0, 59_000)
                for i in range(len(starts)):
                    if i in used or features[i]["long"] or features[i]["multiday"]:
                        continue
                    if not midnight - 6 * HOUR_MS <= starts[i] < midnight:
                        continue
                    duration = plans[i].events[-1][0]
                    if not 2 * MINUTE_MS <= duration <= 5 * HOUR_MS:
                        continue
                    starts[i] = target - duration
                    used.add(i)
                    break

    # ------------------------------------------------------------------ applying events
    def _apply(self, cid: int, kind: int, spec: Any, at: int, out: list | None) -> None:
        if kind == _EV_MESSAGE:
            self._apply_message(cid, spec, at, out)
        elif kind == _EV_STATUS:
            self._apply_status(cid, spec, at, out)
        else:
            self._apply_create(cid, spec, at, out)

    def _apply_create(self, cid: int, spec: dict, at: int, out: list | None) -> None:
        contact_id = spec.get("contact_id")
        if contact_id is None:
            contact_id = self._pick_contact(at, spec.get("email"), spec.get("name"))
        conversation = {
            "id": cid, "status": "open", "contactId": contact_id, "inboxId": spec["inbox"],
            "createdAt": at, "updatedAt": at, "participants": [],
            "relatedPlaybookId": spec.get("playbook"), "conversationTags": spec.get("tags", []),
        }
        self.conversations[cid] = conversation
        self.messages[cid] = []
        self.status_history[cid] = [("open", at)]
        self._index_dirty = True
        if out is not None:
            out.append(self._payload("new_conversation", self.summary(conversation)))

    def _pick_contact(self, at: int, email: str | None = None, name: str | None = None) -> int:
        rng = self._rng
        if email is None and self._contact_pool and rng.random() < 0.25:
            return rng.choice(self._contact_pool)
        if email is not None and email.lower() in self._contacts_by_email:
            return self._contacts_by_email[email.lower()]
        self._next_contact_id += 1
        contact_id = self._next_contact_id
        if name is None:
            name = f"{rng.choice(content.FIRST_NAMES)} {rng.choice(content.LAST_NAMES)}"
        if email is None:
            handle = name.lower().replace(" ", ".")
            email, n = f"{handle}@example.com", 1
            while email in self._contacts_by_email:
                n += 1
                email = f"{handle}{n}@example.com"
        created = at - rng.randrange(0, 30 * DAY_MS) if rng.random() < 0.3 else at
        self.contacts[contact_id] = {
            "id": contact_id, "createdAt": created,
            "attributes": {
                "email": email, "name": name,
                "externalId": f"crm-{contact_id % 1_000_000:06d}" if rng.random() < 0.6 else None,
                "tags": [], "start_date": created, "last_active": at,
            },
        }
        self._contacts_by_email[email.lower()] = contact_id
        self._contact_context[contact_id] = {
            "ip": f"203.0.113.{rng.randrange(1, 255)}", "userAgent": rng.choice(content.USER_AGENTS)}
        self._contact_pool.append(contact_id)
        return contact_id

    def _apply_message(self, cid: int, spec: dict, at: int, out: list | None) -> dict | None:
        conversation = self.conversations.get(cid)
        if conversation is None:
            return None
        thread = self.messages[cid]
        if thread and at <= thread[-1]["createdAt"]:
            at = thread[-1]["createdAt"] + 1
        self._next_message_id += 1
        message_id = self._next_message_id
        spec["_id"] = message_id
        author_type, author_id = spec["author_type"], spec["author_id"]
        if author_id is None:
            author_id = conversation["contactId"] if author_type == "contact" else (
                self.bot_ids[0] if spec["bot"] else (conversation["participants"] or self.agent_ids)[0])
        message = {
            "id": message_id, "orgId": self.org_id, "conversationId": cid, "body": spec["body"],
            "createdAt": at, "type": spec["type"],
            "author": {"type": author_type, "id": author_id, "bot": spec["bot"]},
        }
        if author_type == "contact":
            message["context"] = self._contact_context.get(author_id) or _DEFAULT_CONTEXT
        if "buttons" in spec:
            message["buttons"] = spec["buttons"]
        target = spec.get("target")
        edited = target.get("_id") if target is not None else spec.get("editedMessageId")
        if edited is not None or spec.get("editType"):
            message["editedMessageId"] = edited
            message["editType"] = spec.get("editType")
        if "attributes" in spec:
            message["attributes"] = spec["attributes"]
        thread.append(message)
        if spec.get("routes"):
            self.routed_at.setdefault(cid, at)
        if at > conversation["updatedAt"]:
            conversation["updatedAt"] = at
            self._index_dirty = True
        if author_type == "user" and not spec["bot"] and author_id not in conversation["participants"]:
            conversation["participants"].append(author_id)
            if out is not None:
                out.append(self._payload("conversation_participant_added", self._timed(
                    {"conversationId": cid, "addedParticipants": [author_id]}, at)))
        if out is not None:
            out.append(self._payload("new_message", _copy_message(message)))
        if author_type == "contact" and spec["type"] == "chat" and conversation["status"] == "closed":
            self._apply_status(cid, "open", at, out)
        return message

    def _apply_status(self, cid: int, status: str, at: int, out: list | None) -> None:
        conversation = self.conversations.get(cid)
        if conversation is None or conversation["status"] == status:
            return
        conversation["status"] = status
        self.status_history[cid].append((status, at))
        if at > conversation["updatedAt"]:
            conversation["updatedAt"] = at
        self._index_dirty = True
        if out is not None:
            out.append(self._payload("conversation_status_updated",
                                     self._timed({"conversationId": cid, "status": status}, at)))

    def _payload(self, kind: str, data: dict | None) -> dict:
        """A webhook body in the configured shapes: current ones carry no body token (it is in
        the header, see `SimulatorConfig.webhook_headers`) and `orgId` as a string."""
        if self.config.legacy:
            payload = {"type": kind, "token": self.config.webhook_token, "orgId": self.org_id}
        else:
            payload = {"type": kind, "orgId": str(self.org_id)}
        if data is not None:
            payload["data"] = data
        return payload

    def _timed(self, data: dict, at: int) -> dict:
        # Current status and participant events carry no `changedAt`: the receiver's clock
        # stands in (drift-api.md, Webhooks).
        return {**data, "changedAt": at} if self.config.legacy else data

    def _contact_payload(self, kind: str, contact_id: int | None, email: str | None = None,
                         **extra: Any) -> dict:
        if self.config.legacy:
            named: dict[str, Any] = {"contactId": contact_id} if contact_id is not None else {"email": email}
        else:
            named = {"endUserId": contact_id if contact_id is not None else email}
        return self._payload(kind, {**named, **extra})

    # ------------------------------------------------------------------ public mutations
    def advance(self, minutes: float) -> list[dict]:
        """Moves the virtual clock forward; returns the webhook payloads of what happened, in order."""
        if minutes < 0:
            raise ValueError("minutes must be >= 0")
        with self.lock:
            rng = self._rng
            start, end = self.now_ms, self.now_ms + int(round(minutes * MINUTE_MS))
            out: list[dict] = []
            arrivals: list[int] = []
            cursor = start
            while cursor < end:
                hour_end = min(end, (cursor // HOUR_MS + 1) * HOUR_MS)
                hour = (cursor // HOUR_MS) % 24
                share = HOUR_WEIGHTS[hour] / sum(HOUR_WEIGHTS) * (hour_end - cursor) / HOUR_MS
                lam = self.config.conversations_per_day * share
                arrivals.extend(rng.randint(cursor + 1, hour_end) for _ in range(_poisson(rng, lam)))
                cursor = hour_end
            for t0 in sorted(arrivals):
                features = self._random_features()
                self._next_conversation_id += 1
                self._schedule_into_heap(self._next_conversation_id, t0, self._plan(features),
                                         self._creation_spec(features["flow"], features["pre"]))
            self._schedule_reopens(start, end)
            pending = self._pending
            while pending and pending[0][0] <= end:
                at, _, cid, kind, spec = heapq.heappop(pending)
                self._apply(cid, kind, spec, at, out)
            self._advance_marketing(end, out)
            self.now_ms = end
            return out

    def _schedule_into_heap(self, cid: int, t0: int, plan: _Plan, creation: dict | None) -> None:
        fresh: list = []
        self._schedule(cid, t0, plan, creation, fresh)
        for event in fresh:
            heapq.heappush(self._pending, event)

    def _schedule_reopens(self, start: int, end: int) -> None:
        """Some recently closed conversations get a contact follow-up (reopen), a reply and a close."""
        rng = self._rng
        count = _poisson(rng, self.config.conversations_per_day * 0.03 * (end - start) / DAY_MS)
        if not count:
            return
        recent = [-key[1] for key in self._sorted_index()[:300]]
        closed = [cid for cid in recent if self.conversations[cid]["status"] == "closed"]
        for cid in rng.sample(closed, min(count, len(closed))):
            last = self.conversations[cid]["updatedAt"]
            low = max(start, last) + 1
            if low > end:
                continue
            plan = _Plan(rng)
            plan.message("contact", None, rng.choice(content.CONTACT_REPLIES))
            plan.wait(*self._response_delay())
            agent = (self.conversations[cid]["participants"] or [rng.choice(self.agent_ids)])[0]
            plan.message("user", agent, rng.choice(content.AGENT_REPLIES))
            plan.wait(60, 3600)
            plan.status("closed")
            self._schedule_into_heap(cid, rng.randint(low, end), plan, None)

    def add_message(self, conversation_id: int, *, author_type: str = "contact", author_id: int | None = None,
                    bot: bool = False, type: str = "chat", body: str = "<p>...</p>", at_ms: int | None = None,
                    edited_message_id: int | None = None, edit_type: str | None = None,
                    attributes: dict | None = None, routes: bool = False) -> list[dict]:
        """Adds one message now (or at `at_ms`); returns its webhook payloads. `routes`: this
        message hands the conversation to the inbox (a bot's hand-off), which starts Drift's
        agent response clock.

        A contact chat message on a closed conversation reopens it. `at_ms` later than the clock
        moves the clock there (without background activity); it must be after the conversation's
        last message.
        """
        if author_type not in ("contact", "user"):
            raise ValueError("author_type must be 'contact' or 'user'")
        with self.lock:
            conversation = self._require(conversation_id)
            at = self._resolve_time(at_ms)
            thread = self.messages[conversation_id]
            if thread and at <= thread[-1]["createdAt"]:
                if at_ms is not None:
                    raise ValueError("at_ms must be after the conversation's last message")
                at = thread[-1]["createdAt"] + 1
                self.now_ms = max(self.now_ms, at)
            if at < conversation["createdAt"]:
                raise ValueError("at_ms is before the conversation was created")
            spec: dict[str, Any] = {"author_type": author_type, "author_id": author_id, "bot": bot,
                                    "type": type, "body": body}
            if edited_message_id is not None or edit_type is not None:
                spec["editedMessageId"] = edited_message_id
                spec["editType"] = edit_type
            if attributes is not None:
                spec["attributes"] = attributes
            if routes:
                spec["routes"] = True
            out: list[dict] = []
            self._apply_message(conversation_id, spec, at, out)
            return out

    def set_status(self, conversation_id: int, status: str, at_ms: int | None = None) -> list[dict]:
        """Closes, reopens or pends a conversation; no-op (no payload) when already in that status."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self.lock:
            self._require(conversation_id)
            out: list[dict] = []
            self._apply_status(conversation_id, status, self._resolve_time(at_ms), out)
            return out

    def new_conversation(self, at_ms: int | None = None, *, contact_id: int | None = None,
                         email: str | None = None, name: str | None = None, inbox_id: int | None = None,
                         body: str | None = "<p>Hi, I have a question.</p>", tags: list[dict] | None = None,
                         related_playbook_id: int | None = None) -> tuple[int, list[dict]]:
        """Starts a conversation (with a first contact message unless body is None)."""
        with self.lock:
            at = self._resolve_time(at_ms)
            if contact_id is not None and contact_id not in self.contacts:
                raise KeyError(f"unknown contact {contact_id}")
            self._next_conversation_id += 1
            cid = self._next_conversation_id
            out: list[dict] = []
            self._apply_create(cid, {
                "contact_id": contact_id, "email": email, "name": name,
                "inbox": inbox_id if inbox_id is not None else _INBOX_IDS[0],
                "playbook": related_playbook_id, "tags": tags or []}, at, out)
            if body is not None:
                self._apply_message(cid, {"author_type": "contact", "author_id": None, "bot": False,
                                          "type": "chat", "body": body}, at, out)
            return cid, out

    def identify_contact(self, contact_id: int, *, by_email: bool = False) -> list[dict]:
        """A `contact_identified` payload for an existing contact (named by email only when
        `by_email`, as some deliveries do)."""
        with self.lock:
            contact = self._require_contact(contact_id)
            if by_email:
                return [self._contact_payload("contact_identified", None, contact["attributes"]["email"])]
            return [self._contact_payload("contact_identified", contact_id)]

    def update_contact(self, contact_id: int, at_ms: int | None = None, *, by_email: bool = False,
                       **attributes: Any) -> list[dict]:
        """Changes a contact's attributes; returns the `contact_updated` payload, with Drift's
        `timestamp` and a `diff` of `{name, previous, updated}` per changed attribute."""
        with self.lock:
            contact = self._require_contact(contact_id)
            at = self._resolve_time(at_ms)
            current = contact["attributes"]
            diff = [{"name": name, "previous": current.get(name), "updated": value}
                    for name, value in attributes.items() if current.get(name) != value]
            if not diff:
                return []
            old_email = current.get("email")
            current.update(attributes)
            if "email" in attributes and old_email != attributes["email"]:
                self._contacts_by_email.pop(str(old_email).lower(), None)
                self._contacts_by_email[str(attributes["email"]).lower()] = contact_id
            named = (None, current["email"]) if by_email else (contact_id, None)
            return [self._contact_payload("contact_updated", *named, timestamp=at, diff=diff)]

    def request_gdpr_delete(self, contact_id: int, *, by_email: bool = False) -> list[dict]:
        """The visitor asked Drift to forget them: the contact is deleted here (its API answers
        404 from now on) and a `gdpr_delete_requested` payload names it, by id or by email."""
        with self.lock:
            contact = self._require_contact(contact_id)
            email = contact["attributes"]["email"]
            del self.contacts[contact_id]
            self._contacts_by_email.pop(str(email).lower(), None)
            if contact_id in self._contact_pool:
                self._contact_pool.remove(contact_id)
            if by_email:
                return [self._contact_payload("gdpr_delete_requested", None, email)]
            return [self._contact_payload("gdpr_delete_requested", contact_id)]

    def disconnect_app(self) -> list[dict]:
        """The workspace disconnected the app: an `app_disconnected` payload (without `data` in
        the current shapes). Tokens keep working here; the pipeline must stop using them."""
        return [self._payload("app_disconnected", {} if self.config.legacy else None)]

    def _require_contact(self, contact_id: int) -> dict:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise KeyError(f"unknown contact {contact_id}")
        return contact

    def _resolve_time(self, at_ms: int | None) -> int:
        if at_ms is None:
            return self.now_ms
        at = int(at_ms)
        if at > self.now_ms:
            self.now_ms = at
        return at

    def _require(self, conversation_id: int) -> dict:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise KeyError(f"unknown conversation {conversation_id}")
        return conversation

    # ------------------------------------------------------------------ reads (API shapes)
    @staticmethod
    def summary(conversation: dict) -> dict:
        return {k: conversation[k] for k in ("id", "status", "contactId", "inboxId", "createdAt", "updatedAt")}

    def _sorted_index(self) -> list[tuple[int, int]]:
        if self._index_dirty:
            self._index = sorted((-c["updatedAt"], -c["id"]) for c in self.conversations.values())
            self._index_dirty = False
        return self._index

    def list_page(self, limit: int, statuses: set[str] | None = None,
                  after: tuple[int, int] | None = None) -> tuple[list[dict], tuple[int, int] | None]:
        """One page of the newest-first listing after the keyset `after` = (updatedAt, id).

        Returns the items and the key to continue from (None on the last page).
        """
        with self.lock:
            index = self._sorted_index()
            position = 0 if after is None else bisect_right(index, (-after[0], -after[1]))
            items: list[dict] = []
            while position < len(index) and len(items) < limit:
                conversation = self.conversations[-index[position][1]]
                position += 1
                if statuses is None or conversation["status"] in statuses:
                    items.append(self.summary(conversation))
            if not items:
                return items, None
            if statuses is not None:
                while position < len(index) and self.conversations[-index[position][1]]["status"] not in statuses:
                    position += 1
            if position >= len(index):
                return items, None
            return items, (items[-1]["updatedAt"], items[-1]["id"])

    def messages_page(self, conversation_id: int, after_id: int | None,
                      limit: int = 50) -> tuple[list[dict], int | None]:
        with self.lock:
            thread = self.messages[conversation_id]
            start = 0
            if after_id is not None:
                ids = [m["id"] for m in thread]
                # ids of one thread increase with createdAt except for backdated manual messages
                start = next((i + 1 for i, mid in enumerate(ids) if mid == after_id), None)
                if start is None:
                    raise KeyError(after_id)
            page = [_copy_message(m) for m in thread[start:start + limit]]
            more = start + limit < len(thread)
            return page, (page[-1]["id"] if more else None)

    def transcript(self, conversation_id: int) -> str:
        """Plain-text rendering of the chat, like Drift's transcript endpoint."""
        with self.lock:
            users = {u["id"]: u["name"] for u in self.users}
            conversation = self.conversations[conversation_id]
            contact = self.contacts.get(conversation["contactId"], {})
            contact_name = contact.get("attributes", {}).get("name") or "Visitor"
            lines = []
            for m in self.messages[conversation_id]:
                if m["type"] != "chat":
                    continue
                who = contact_name if m["author"]["type"] == "contact" else users.get(m["author"]["id"], "Agent")
                when = ms_to_datetime(m["createdAt"]).strftime("%Y-%m-%d %H:%M:%S")
                text = html.unescape(_TAG_RE.sub("", m["body"]))
                lines.append(f"[{when} UTC] {who}: {text}")
            return "\n".join(lines) + ("\n" if lines else "")

    def contact_by_email(self, email: str) -> dict | None:
        with self.lock:
            contact_id = self._contacts_by_email.get(email.strip().lower())
            return self.contacts.get(contact_id) if contact_id is not None else None

    def conversation_metrics(self, conversation_id: int) -> dict[str, int | None]:
        """Drift's reporting view of one conversation (None where Drift answers "NaN").

        Computed from the world's own truth (the status history, the thread as sent, the
        routing), by Drift's documented definitions, not by the pipeline's: the agent is a human
        user (never a bot); `firstAgentMessageAt` is the first agent message *during the
        conversation* (an agent opener before the contact wrote included);
        `timeToAgentResponseMillis` is how long the agent took to respond *once routed in* (from
        the bot's hand-off, else from the contact's first message). Where Drift's docs are
        silent (choice): a chat message deleted later still counts (it was sent, the report
        records the event), notes and other non-chat messages do not."""
        history = self.status_history[conversation_id]
        conversation = self.conversations[conversation_id]
        closes = [at for status, at in history if status == "closed"]
        reopens = sum(1 for (prev, _), (cur, _) in zip(history, history[1:]) if prev == "closed" and cur == "open")
        first_close = closes[0] if closes else None
        thread = self.messages[conversation_id]
        agent_chats = [m["createdAt"] for m in thread
                       if m["type"] == "chat" and m["author"]["type"] == "user" and not m["author"]["bot"]]
        contact_chats = [m["createdAt"] for m in thread if m["type"] == "chat" and m["author"]["type"] == "contact"]
        routed = self.routed_at.get(conversation_id, contact_chats[0] if contact_chats else None)
        response = next((at for at in agent_chats if routed is not None and at >= routed), None)
        playbook = conversation.get("relatedPlaybookId")
        return {
            "firstCloseAt": first_close,
            "lastCloseAt": closes[-1] if closes else None,
            "timeToCloseMillis": first_close - conversation["createdAt"] if first_close is not None else None,
            "closeCount": len(closes),
            "reopenCount": reopens,
            "firstAgentMessageAt": agent_chats[0] if agent_chats else None,
            "timeToAgentResponseMillis": response - routed if response is not None else None,
            "relatedPlaybookId": int(playbook) if playbook is not None else None,
            "createdAt": conversation["createdAt"],
            "updatedAt": conversation["updatedAt"],
        }


def _copy_message(message: dict) -> dict:
    copy = dict(message)
    copy["author"] = dict(message["author"])
    if "context" in copy:
        copy["context"] = dict(copy["context"])
    return copy
