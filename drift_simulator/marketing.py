"""Meetings, playbooks and accounts of the simulated workspace (a mixin of `DriftWorld`).

Everything here draws from its own random stream (seeded from the world's seed), so the
conversations, messages and contacts are exactly what they were before meetings existed, and
the same seed gives the same meetings.

Meetings follow Drift's rules as the pipeline meets them (drift-api.md, Meetings): the API
serves a meeting only while its slot starts within the last 30 days of the world's clock;
older ones are never returned again. A meeting is booked at `scheduledAt`; a cancellation
changes its `status` and moves `updatedAt`; a reschedule moves the slot and `updatedAt`; a
rebook after a cancellation makes it `ACTIVE` again. Most are booked in a playbook's
conversation (`conversationId`), some outside any conversation (an email drop).

Playbooks: Drift lists only enabled ones. 881003 is disabled before anyone syncs, yet the
generated conversations point at it (`relatedPlaybookId`); a playbook can be renamed, disabled
and enabled again. Accounts: a paged listing (`index`/`size`), deleted ones listed with
`deleted: true` and retrievable by id.
"""

from __future__ import annotations

import heapq
import random
import uuid
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SERVED_DAYS = 30  # Drift serves meetings whose slot starts within the last 30 days
MEETINGS_DEFAULT_LIMIT = 100  # `limit` when a call names none (choice: Drift's docs say 0-1000, default 100)
MEETINGS_MAX_LIMIT = 1000
ACCOUNTS_MAX_SIZE = 100

ACTIVE, CANCELED = "ACTIVE", "CANCELED"
MEETING_TYPES = ("Discovery Call", "Product Demo", "Pricing Review")
MEETING_NOTES = (
    "Wants to see the Salesforce sync.", "Team of 40, evaluating three vendors.",
    "Asked for a security questionnaire before the call.", "Budget approved for Q1.",
)
# (id, name, reportType, enabled at the start): 881003 is disabled before the first sync.
PLAYBOOKS = (
    (881_001, "Book a demo", "BOOK_MORE_MEETINGS", True),
    (881_002, "Pricing page concierge", "BOOK_MORE_MEETINGS", True),
    (881_003, "Webinar follow-up (retired)", "GENERATE_LEADS", False),
    (881_004, "Support triage", "ANSWER_QUESTIONS", True),
)
GOAL_MESSAGES = ("Meeting booked", "Email captured")
ACCOUNT_DOMAINS = ("acme.example", "globex.example", "initech.example", "umbrella.example",
                   "hooli.example", "vandelay.example", "stark.example", "wayne.example")

_EV_BOOK, _EV_CANCEL, _EV_RESCHEDULE, _EV_REBOOK = 0, 1, 2, 3


class MarketingMixin:
    """Meetings, playbooks and accounts; `DriftWorld` calls `_init_marketing` after building its
    history and `_advance_marketing` at the end of each `advance`."""

    # -------------------------------------------------------------- building
    def _init_marketing(self, end_ms: int) -> None:
        self._mrng = random.Random(self.config.seed * 104_729 + 61)
        self.meetings: dict[str, dict] = {}
        self.playbooks: dict[int, dict] = {}
        self.playbook_enabled: dict[int, bool] = {}
        self.accounts: dict[str, dict] = {}
        self._meeting_pending: list[tuple[int, int, int, Any]] = []
        self._meeting_seq = 0
        self._meetings_planned_through = 0  # conversations up to this id have their meetings planned
        self._make_playbooks()
        self._make_accounts()
        self._plan_history_meetings()
        self._apply_meeting_events(end_ms, None)

    def _make_playbooks(self) -> None:
        rng = self._mrng
        for index, (playbook_id, name, report_type, enabled) in enumerate(PLAYBOOKS):
            created = self.start_ms - (300 - 40 * index) * DAY_MS
            author = self.agent_ids[index % len(self.agent_ids)]
            self.playbooks[playbook_id] = {
                "id": playbook_id, "name": name, "orgId": self.org_id,
                "meta": {"enabled": True, "channel": "web"},
                "createdAt": created, "updatedAt": created + 20 * DAY_MS,
                "createdAuthorId": author, "updatedAuthorId": author,
                "interactionId": 1_200_000 + index, "reportType": report_type,
                "goals": [{"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "message": message}
                          for message in GOAL_MESSAGES[:1 + index % 2]],
            }
            self.playbook_enabled[playbook_id] = enabled

    def _make_accounts(self) -> None:
        rng = self._mrng
        for index, domain in enumerate(ACCOUNT_DOMAINS):
            account_id = f"{123_450 + index}_{domain}"
            created = self.start_ms - rng.randint(30, 400) * DAY_MS
            self.accounts[account_id] = {
                "ownerId": self.agent_ids[index % len(self.agent_ids)],
                "name": domain.split(".")[0].title() + " Inc.", "domain": domain, "accountId": account_id,
                "customProperties": [{"label": "Industry", "name": "industry",
                                      "value": rng.choice(("SaaS", "Retail", "Finance")), "type": "STRING"}],
                "deleted": index in (2, 5),  # two deleted accounts stay listed
                "createDateTime": created, "updateDateTime": created + rng.randint(1, 20) * DAY_MS,
                "targeted": index % 3 != 1,
            }

    def _plan_history_meetings(self) -> None:
        """Meetings booked in a share of the playbook conversations of the history, plus a few
        booked outside any conversation; decks keep every case (cancelled, rescheduled,
        cancelled then rebooked, no conversation) in small worlds."""
        rng = self._mrng
        candidates = sorted(cid for cid, c in self.conversations.items() if c.get("relatedPlaybookId") is not None)
        self._meetings_planned_through = max(self.conversations, default=0)
        chosen = sorted(_sample(rng, candidates, 0.3, 4))
        cancelled = set(_sample(rng, chosen, 0.15, 1))
        rescheduled = set(_sample(rng, [c for c in chosen if c not in cancelled], 0.15, 1))
        rebooked = set(_sample(rng, sorted(cancelled), 0.3, 1))
        for cid in chosen:
            at = self.conversations[cid]["createdAt"] + rng.randint(2, 20) * MINUTE_MS
            self._plan_meeting(at, cid, cancel=cid in cancelled, reschedule=cid in rescheduled,
                               rebook=cid in rebooked)
        contacts = sorted(self.contacts)
        span = max(1, self.now_ms - self.start_ms)
        for _ in range(max(2, round(0.05 * len(self.conversations)))):
            if not contacts:
                break
            self._plan_meeting(self.start_ms + rng.randrange(span), None, contact_id=rng.choice(contacts))

    def _plan_meeting(self, at: int, conversation_id: int | None, *, contact_id: int | None = None,
                      cancel: bool = False, reschedule: bool = False, rebook: bool = False) -> None:
        rng = self._mrng
        slot = _half_hour_ceiling(at + rng.randint(2 * 60, 21 * 24 * 60) * MINUTE_MS)
        spec = {"slug": "%010x" % rng.getrandbits(40), "conversation_id": conversation_id,
                "contact_id": contact_id, "slot_start": slot,
                "type": rng.choice(MEETING_TYPES), "tz": rng.choice(("Europe/Paris", "America/New_York",
                                                                       "Asia/Tokyo", "Europe/London")),
                "notes": rng.choice(MEETING_NOTES) if rng.random() < 0.5 else None,
                "booked_by_agent": rng.random() < 0.2, "agent": rng.choice(self.agent_ids)}
        self._push_meeting(at, _EV_BOOK, spec)
        if cancel or reschedule:
            change_at = at + int((slot - at) * rng.uniform(0.2, 0.6))
            if cancel:
                self._push_meeting(change_at, _EV_CANCEL, spec["slug"])
                if rebook:
                    self._push_meeting(change_at + int((slot - change_at) * 0.5), _EV_REBOOK, spec["slug"])
            else:
                moved = slot + rng.choice((-2, -1, 1, 2, 3)) * DAY_MS
                self._push_meeting(change_at, _EV_RESCHEDULE, (spec["slug"], max(moved, _half_hour_ceiling(
                    change_at + HOUR_MS))))

    def _push_meeting(self, at: int, kind: int, spec: Any) -> None:
        self._meeting_seq += 1
        heapq.heappush(self._meeting_pending, (at, self._meeting_seq, kind, spec))

    def _advance_marketing(self, end: int, out: list) -> None:
        """Plans meetings for the playbook conversations `advance` created, then applies every
        meeting event due by `end`; their payloads join `out` only when the config asks."""
        rng = self._mrng
        fresh = sorted(cid for cid in self.conversations if cid > self._meetings_planned_through)
        for cid in fresh:
            if self.conversations[cid].get("relatedPlaybookId") is not None and rng.random() < 0.3:
                at = self.conversations[cid]["createdAt"] + rng.randint(2, 20) * MINUTE_MS
                roll = rng.random()
                self._plan_meeting(at, cid, cancel=roll < 0.12, reschedule=0.12 <= roll < 0.24,
                                   rebook=roll < 0.04)
        if fresh:
            self._meetings_planned_through = fresh[-1]
        self._apply_meeting_events(end, out if self.config.meeting_webhooks else None)

    def _apply_meeting_events(self, end: int, out: list | None) -> None:
        pending = self._meeting_pending
        while pending and pending[0][0] <= end:
            at, _, kind, spec = heapq.heappop(pending)
            if kind == _EV_BOOK:
                self._apply_booking(spec, at, out)
            elif kind == _EV_CANCEL:
                self._change_meeting(spec, at, status=CANCELED)
            elif kind == _EV_REBOOK:
                self._change_meeting(spec, at, status=ACTIVE)
            else:
                self._change_meeting(spec[0], at, slot_start=spec[1])

    def _apply_booking(self, spec: dict, at: int, out: list | None) -> dict:
        conversation_id = spec.get("conversation_id")
        conversation = self.conversations.get(conversation_id) if conversation_id is not None else None
        contact_id = spec.get("contact_id")
        if contact_id is None and conversation is not None:
            contact_id = conversation["contactId"]
        agent = spec["agent"]
        if conversation is not None and conversation["participants"]:
            agent = conversation["participants"][0]
        legacy = self.config.legacy
        meeting: dict[str, Any] = {
            "agentId": agent, "orgId": self.org_id, "status": ACTIVE,
            "meetingSource": ("chat" if legacy else "CHAT") if conversation is not None else "EMAIL_DROP",
            "schedulerId": str(contact_id) if legacy else contact_id,
            "eventId": f"evt-{spec['slug']}", "slug": spec["slug"],
            "slotStart": spec["slot_start"], "slotEnd": spec["slot_start"] + spec.get("minutes", 30) * MINUTE_MS,
            "updatedAt": at, "scheduledAt": at, "meetingType": spec["type"],
            "endUserTimeZone": spec["tz"],
        }
        if conversation is not None:
            meeting["conversationId"] = str(conversation_id) if legacy else conversation_id
        if spec.get("notes") is not None:
            meeting["meetingNotes"] = spec["notes"]
        if spec.get("booked_by_agent"):
            meeting["bookedBy"] = agent
        self.meetings[spec["slug"]] = meeting
        if out is not None:
            out.append(self._payload("new_meeting", self._meeting_payload(meeting)))
        return meeting

    def _meeting_payload(self, meeting: dict) -> dict:
        # Current deliveries carry the whole meeting; legacy ones only name it (and its slot):
        # the receiver of a subset fetches the meetings of its day.
        if self.config.legacy:
            return {"slug": meeting["slug"], "slotStart": meeting["slotStart"], "agentId": meeting["agentId"]}
        return dict(meeting)

    def _change_meeting(self, slug: str, at: int, *, status: str | None = None,
                        slot_start: int | None = None) -> dict:
        meeting = self.meetings[slug]
        if status is not None:
            meeting["status"] = status
        if slot_start is not None:
            length = meeting["slotEnd"] - meeting["slotStart"]
            meeting["slotStart"], meeting["slotEnd"] = slot_start, slot_start + length
        meeting["updatedAt"] = max(at, meeting["updatedAt"] + 1)
        return meeting

    # -------------------------------------------------------------- public mutations (tests, demo)
    def book_meeting(self, slot_start_ms: int, *, conversation_id: int | None = None,
                     contact_id: int | None = None, agent_id: int | None = None, notes: str | None = None,
                     slug: str | None = None, minutes: int = 30, at_ms: int | None = None) -> tuple[str, list[dict]]:
        """Books a meeting now (or at `at_ms`), in a conversation or for a contact; returns its
        slug and its `new_meeting` payload."""
        with self.lock:
            at = self._resolve_time(at_ms)
            if conversation_id is not None:
                self._require(conversation_id)
            elif contact_id is None:
                raise ValueError("a meeting needs a conversation_id or a contact_id")
            slug = slug or "%010x" % self._mrng.getrandbits(40)
            if slug in self.meetings:
                raise ValueError(f"meeting {slug} exists")
            spec = {"slug": slug, "conversation_id": conversation_id, "contact_id": contact_id,
                    "slot_start": int(slot_start_ms), "type": MEETING_TYPES[0], "tz": "Europe/Paris",
                    "notes": notes, "booked_by_agent": False, "minutes": minutes,
                    "agent": agent_id if agent_id is not None else self.agent_ids[0]}
            out: list[dict] = []
            meeting = self._apply_booking(spec, at, out)
            if agent_id is not None:
                meeting["agentId"] = agent_id
                out[-1]["data"]["agentId"] = agent_id
            return slug, out

    def cancel_meeting(self, slug: str, at_ms: int | None = None) -> dict:
        with self.lock:
            return dict(self._change_meeting(slug, self._resolve_time(at_ms), status=CANCELED))

    def rebook_meeting(self, slug: str, at_ms: int | None = None) -> dict:
        """A cancelled meeting booked again: `ACTIVE`, same slug, `updatedAt` moved."""
        with self.lock:
            return dict(self._change_meeting(slug, self._resolve_time(at_ms), status=ACTIVE))

    def reschedule_meeting(self, slug: str, slot_start_ms: int, at_ms: int | None = None) -> dict:
        with self.lock:
            return dict(self._change_meeting(slug, self._resolve_time(at_ms), slot_start=int(slot_start_ms)))

    def rename_playbook(self, playbook_id: int, name: str, at_ms: int | None = None) -> None:
        with self.lock:
            playbook = self.playbooks[playbook_id]
            playbook["name"] = name
            playbook["updatedAt"] = self._resolve_time(at_ms)

    def set_playbook_enabled(self, playbook_id: int, enabled: bool) -> None:
        """Disabled playbooks vanish from `/playbooks/list`; conversations keep pointing at them."""
        with self.lock:
            self.playbooks[playbook_id]  # KeyError for an unknown id
            self.playbook_enabled[playbook_id] = bool(enabled)

    def delete_account(self, account_id: str, at_ms: int | None = None) -> None:
        with self.lock:
            account = self.accounts[account_id]
            account["deleted"] = True
            account["updateDateTime"] = self._resolve_time(at_ms)

    def playbook_goal_met(self, conversation_id: int, goal_index: int = 0) -> list[dict]:
        """A `playbook_goal_met` payload for a conversation's playbook (no documented example:
        `playbookId`, `goalId`, `conversationId`, `endUserId`; legacy shapes send the ids as
        numeric strings)."""
        with self.lock:
            conversation = self._require(conversation_id)
            playbook_id = conversation.get("relatedPlaybookId")
            if playbook_id is None:
                raise ValueError(f"conversation {conversation_id} has no playbook")
            goal = self.playbooks[int(playbook_id)]["goals"][goal_index]
            ids = {"playbookId": int(playbook_id), "conversationId": conversation_id,
                   "endUserId": conversation["contactId"]}
            if self.config.legacy:
                ids = {key: str(value) for key, value in ids.items()}
            return [self._payload("playbook_goal_met", {**ids, "goalId": goal["id"]})]

    # -------------------------------------------------------------- reads (API shapes)
    def served_meetings(self, min_start_ms: int, max_start_ms: int, limit: int) -> list[dict]:
        """What `GET /users/meetings/org` answers: slots in [min, max] and within the last 30
        days of the clock, earliest slot first, at most `limit`."""
        with self.lock:
            floor = max(min_start_ms, self.now_ms - SERVED_DAYS * DAY_MS)
            found = sorted((m for m in self.meetings.values() if floor <= m["slotStart"] <= max_start_ms),
                           key=lambda m: (m["slotStart"], m["slug"]))
            return [dict(m) for m in found[:limit]]

    def listed_playbooks(self) -> list[dict]:
        with self.lock:
            return [_deep_copy(p) for pid, p in sorted(self.playbooks.items()) if self.playbook_enabled[pid]]

    def accounts_page(self, index: int, size: int) -> tuple[list[dict], int]:
        with self.lock:
            ordered = [self.accounts[k] for k in sorted(self.accounts)]
            return [_deep_copy(a) for a in ordered[index:index + size]], len(ordered)


def _sample(rng: random.Random, population: list, share: float, minimum: int) -> list:
    k = min(len(population), max(minimum, round(share * len(population))))
    return rng.sample(population, k)


def _half_hour_ceiling(ms: int) -> int:
    step = 30 * MINUTE_MS
    return -(-ms // step) * step


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
