"""Our marts against Drift's own numbers, conversation by conversation.

Drift's `POST /reports/conversations` answers, per conversation, the figures Drift's UI shows:
`firstCloseAt`, `timeToCloseMillis`, `firstAgentMessageAt` and `timeToAgentResponseMillis`
("how long it took the agent to respond once routed in"; "NaN" when absent). Ours differ on
purpose in places (dbt_project/DECISIONLOG.md, "Numbers that match Drift's"): an agent opener is
not a response, a deleted reply never answered, the clock starts when the contact wrote. So a
difference is not an error when the conversation's raw data shows which of those choices made
it; `classify` names the reason from the messages and status events we hold, and only a
difference nothing explains counts against the agreement.

Plain data in and out, except `fetch_reports` (the API) and `latest_sync_windows` / `load_*`
(the warehouse's SQL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Iterable

from drift_pipeline.timeutil import ts_to_ms

# What we compare: our name -> (Drift's metric, how Drift's value reads: a time or a duration).
COMPARED = {
    "first_close": "firstCloseAt",
    "time_to_close": "timeToCloseMillis",
    "first_agent_message": "firstAgentMessageAt",
    "time_to_agent_response": "timeToAgentResponseMillis",
}
REPORT_METRICS = tuple(COMPARED.values())  # asked in this order; the answer's values follow it

AGREEMENT_TARGET = 0.99  # a metric warns when fewer of its compared conversations agree or are explained
TOLERANCE_MS = 1  # Drift's times are milliseconds; ours are the same instants, in microseconds
DAY_MS = 86_400_000
WINDOW_MS = DAY_MS  # one report call per day of the synced window
MAX_WINDOW_DAYS = 14  # a long backfill is checked on its last two weeks, not its years
MIN_SPLIT_MS = 3_600_000  # a truncated answer is asked again in halves down to an hour
WEBHOOK_DELAY_MS = 5 * 60_000  # how late a status webhook without `changedAt` may be counted
LISTED = 50  # differences listed in the check's metadata (all are counted)

# Why a difference is expected; the DECISIONLOG has one entry each.
REASONS = {
    "bot_routing": "Drift times the agent response from the bot's hand-off (routing); ours from the "
                   "contact's first message",
    "deleted_message": "Drift counts an agent message that was deleted later; ours ignores deleted messages",
    "agent_opener": "Drift's first agent message was sent before the contact wrote; ours waits for the contact",
    "note": "Drift counted an agent's note (or another non-chat message); ours counts chat messages only",
    "bot_message": "Drift counted a bot's message as an agent's; ours never counts bots",
    "reopen_before_watch": "closed, reopened and closed again before the pipeline saw it, and Drift's "
                           "report close was not stored: ours is a later close",
    "webhook_arrival": "our close came from a status webhook without changedAt, timed when it arrived",
    "business_hours": "Drift's figure equals our business-hours one (the workspace reports business hours)",
    "not_synced": "Drift knows of a change after the pipeline last fetched the conversation",
}


@dataclass(frozen=True)
class Ours:
    """What the warehouse holds of one conversation: the fct columns compared, and the raw
    conversation row's `updated_at` / `synced_at` (what we had seen, and when)."""

    conversation_id: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    synced_at: datetime | None = None
    first_contact_message_at: datetime | None = None
    first_agent_message_at: datetime | None = None
    first_response_seconds: float | None = None
    first_response_business_seconds: float | None = None
    first_closed_at: datetime | None = None
    open_to_close_seconds: float | None = None


@dataclass(frozen=True)
class RawMessage:
    message_id: int
    created_at: datetime
    message_type: str | None = "chat"
    author_type: str | None = "user"
    is_bot: bool | None = False
    edited_message_id: int | None = None
    edit_type: str | None = None


@dataclass(frozen=True)
class StatusEvent:
    status: str
    changed_at: datetime
    source: str | None = None


@dataclass(frozen=True)
class RawConversation:
    """The raw rows `classify` reads: every message and status event of one conversation."""

    messages: tuple[RawMessage, ...] = ()
    status_events: tuple[StatusEvent, ...] = ()


@dataclass(frozen=True)
class Difference:
    org_id: int | None
    conversation_id: int
    metric: str
    ours: int | None  # milliseconds (an epoch time or a duration), None when we have none
    drift: int | None
    reasons: tuple[str, ...]


@dataclass
class MetricTally:
    compared: int = 0
    matched: int = 0
    explained: int = 0

    @property
    def agreeing_share(self) -> float:
        """Share of compared conversations that agree or whose difference is explained."""
        return 1.0 if not self.compared else (self.matched + self.explained) / self.compared


@dataclass
class Reconciliation:
    """The comparison of one or more orgs' report answers with the warehouse."""

    tallies: dict[str, MetricTally] = field(default_factory=lambda: {m: MetricTally() for m in COMPARED})
    differences: list[Difference] = field(default_factory=list)
    reported: int = 0  # conversations in Drift's answers
    ours_not_reported: int = 0  # ours updated in the window (as last seen) that Drift no longer reports there
    report_calls: int = 0
    windows: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if not d.reasons]

    @property
    def passed(self) -> bool:
        return all(t.agreeing_share >= AGREEMENT_TARGET for t in self.tallies.values())

    def reason_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {m: {} for m in COMPARED}
        for d in self.differences:
            for reason in d.reasons or ("unexplained",):
                counts[d.metric][reason] = counts[d.metric].get(reason, 0) + 1
        return {m: dict(sorted(c.items())) for m, c in counts.items() if c}

    def merge(self, other: "Reconciliation") -> None:
        for metric, tally in other.tallies.items():
            mine = self.tallies[metric]
            mine.compared += tally.compared
            mine.matched += tally.matched
            mine.explained += tally.explained
        self.differences += other.differences
        self.reported += other.reported
        self.ours_not_reported += other.ours_not_reported
        self.report_calls += other.report_calls
        self.windows += other.windows


# -- Drift's answer ---------------------------------------------------------------------------
def metric_value(value: Any) -> int | None:
    """One reported metric as integer milliseconds; None for Drift's "NaN" (a string or a JSON
    NaN), null, or anything unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else int(round(number))


def parse_report(report: Any, metrics: Iterable[str] = REPORT_METRICS) -> dict[int, dict[str, int | None]]:
    """{conversation id: {metric: value}} from a report answer (values in the order asked); ids
    may arrive as numeric strings; unreadable rows are left out."""
    names = list(metrics)
    rows = report.get("data") if isinstance(report, dict) else None
    out: dict[int, dict[str, int | None]] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not isinstance(row.get("metrics"), list):
            continue
        try:
            conversation_id = int(row.get("conversationId"))
        except (TypeError, ValueError):
            continue
        values = row["metrics"] + [None] * (len(names) - len(row["metrics"]))
        out[conversation_id] = {name: metric_value(value) for name, value in zip(names, values)}
    return out


def report_windows(start_ms: int, end_ms: int, step_ms: int = WINDOW_MS) -> list[tuple[int, int]]:
    """[start_ms, end_ms] in consecutive inclusive windows of at most `step_ms` (Drift's
    BETWEEN includes both ends, so each window stops a millisecond before the next)."""
    windows, low = [], start_ms
    while low <= end_ms:
        high = min(end_ms, low + step_ms - 1)
        windows.append((low, high))
        low = high + 1
    return windows


def check_window(window_start: datetime, window_end: datetime, sync_started_at: datetime | None
                 ) -> tuple[datetime, datetime] | None:
    """The part [start, end) of a sync's window to compare: up to when the sync began listing (a conversation
    Drift last updated before then was listed as it is now), at most its last MAX_WINDOW_DAYS."""
    end = min(window_end, sync_started_at) if sync_started_at is not None else window_end
    start = max(window_start, end - timedelta(days=MAX_WINDOW_DAYS))
    return (start, end) if start < end else None


async def fetch_reports(report: Callable[[int, int, list[str]], Awaitable[dict]], start_ms: int, end_ms: int,
                        metrics: Iterable[str] = REPORT_METRICS) -> tuple[dict[int, dict[str, int | None]], int]:
    """Drift's report rows for `updatedAt` in [start_ms, end_ms], one call per window (never
    one per conversation); a window whose answer says it holds more conversations (`count`)
    than it returned is asked again in halves. Returns the rows and the number of calls."""
    names = list(metrics)
    rows: dict[int, dict[str, int | None]] = {}
    calls = 0
    pending = report_windows(start_ms, end_ms)
    while pending:
        low, high = pending.pop(0)
        answer = await report(low, high, names)
        calls += 1
        parsed = parse_report(answer, names)
        count = answer.get("count") if isinstance(answer, dict) else None
        truncated = isinstance(count, int) and not isinstance(count, bool) and count > len(parsed)
        if truncated and high - low >= MIN_SPLIT_MS:
            middle = (low + high) // 2
            pending[:0] = [(low, middle), (middle + 1, high)]
            continue
        rows.update(parsed)
    return rows, calls


# -- comparison -------------------------------------------------------------------------------
def _ms(value: datetime | None) -> int | None:
    return None if value is None else ts_to_ms(value)


def _seconds_ms(value: float | None) -> int | None:
    return None if value is None else int(round(value * 1000))


def our_value(metric: str, ours: Ours | None) -> int | None:
    """Our figure for a compared metric, in Drift's unit (milliseconds)."""
    if ours is None:
        return None
    return {
        "first_close": lambda: _ms(ours.first_closed_at),
        "time_to_close": lambda: _seconds_ms(ours.open_to_close_seconds),
        "first_agent_message": lambda: _ms(ours.first_agent_message_at),
        "time_to_agent_response": lambda: _seconds_ms(ours.first_response_seconds),
    }[metric]()


def _same(a: int | None, b: int | None) -> bool:
    return a is None and b is None or (a is not None and b is not None and abs(a - b) <= TOLERANCE_MS)


def _deleted_ids(messages: Iterable[RawMessage]) -> set[int]:
    return {m.edited_message_id for m in messages
            if m.message_type == "edit" and (m.edit_type or "").lower() == "delete" and m.edited_message_id is not None}


def _human(m: RawMessage) -> bool:
    return m.author_type == "user" and not m.is_bot


def _is_chat(m: RawMessage) -> bool:
    return m.message_type == "chat"


def _is_note(m: RawMessage) -> bool:
    return m.message_type not in ("chat", "edit", None)


def _ordered(messages: Iterable[RawMessage]) -> list[RawMessage]:
    return sorted(messages, key=lambda m: (m.created_at, m.message_id))


def _first_close_reasons(drift: int | None, ours: int | None, row: Ours, raw: RawConversation) -> tuple[str, ...]:
    if drift is not None and row.synced_at is not None and drift > ts_to_ms(row.synced_at):
        return ("not_synced",)
    if drift is None or ours is None or ours < drift:
        return ()  # a close Drift does not know of, or one before Drift's first: nothing we chose explains it
    events = sorted(raw.status_events, key=lambda e: (e.changed_at, e.status))
    at_ours = [e for e in events if e.status == "closed" and abs(ts_to_ms(e.changed_at) - ours) <= TOLERANCE_MS]
    if any(e.source == "webhook" for e in at_ours) and ours - drift <= WEBHOOK_DELAY_MS:
        return ("webhook_arrival",)
    reopened = any(a.status == "closed" and b.status == "open" for a, b in zip(events, events[1:]))
    # No close of ours at that instant: the `updated_at` fallback, the latest close we could see.
    seen_only_latest = not at_ours or all(e.source == "poll" for e in at_ours)
    return ("reopen_before_watch",) if reopened or seen_only_latest else ()


def _first_agent_message_reasons(drift: int | None, ours: int | None, row: Ours,
                                 raw: RawConversation) -> tuple[str, ...]:
    if drift is not None and row.synced_at is not None and drift > ts_to_ms(row.synced_at):
        return ("not_synced",)
    if drift is None or (ours is not None and drift > ours):
        return ()  # Drift counts every human chat message we count: a later one is not a choice of ours
    deleted = _deleted_ids(raw.messages)
    first_contact = _ms(row.first_contact_message_at)
    reasons: list[str] = []
    for m in raw.messages:
        if abs(ts_to_ms(m.created_at) - drift) > TOLERANCE_MS or m.author_type != "user":
            continue
        if m.is_bot:
            reasons.append("bot_message")
        elif _is_chat(m) and m.message_id in deleted:
            reasons.append("deleted_message")
        elif _is_chat(m) and (first_contact is None or ts_to_ms(m.created_at) < first_contact):
            reasons.append("agent_opener")
        elif _is_note(m):
            reasons.append("note")
    return tuple(dict.fromkeys(reasons))


# The message kinds Drift might count as the agent's response beyond ours, each with its reason.
_RESPONSE_RULES: tuple[tuple[str, ...], ...] = ((), ("deleted_message",), ("note",), ("deleted_message", "note"))


def _agent_response_reasons(drift: int | None, ours: int | None, row: Ours,
                            raw: RawConversation) -> tuple[str, ...]:
    if drift is not None and _same(_seconds_ms(row.first_response_business_seconds), drift):
        return ("business_hours",)
    messages = _ordered(raw.messages)
    deleted = _deleted_ids(messages)
    first_contact = _ms(row.first_contact_message_at)
    if first_contact is None:
        return ()
    bot_times = [ts_to_ms(m.created_at) for m in messages
                 if m.author_type == "user" and m.is_bot and _is_chat(m) and ts_to_ms(m.created_at) >= first_contact]
    if drift is None:
        # Drift found no response once routed: ours came before the bot handed over.
        agent_at = _ms(row.first_agent_message_at)
        return ("bot_routing",) if agent_at is not None and any(t > agent_at for t in bot_times) else ()

    def kind(m: RawMessage) -> str | None:
        if not _human(m):
            return None
        if _is_chat(m):
            return "deleted_message" if m.message_id in deleted else "chat"
        return "note" if _is_note(m) else None

    # Where Drift's clock may have started (the contact's first message, or a bot's hand-off),
    # and which messages it may have taken as the response: the first combination that gives
    # Drift's figure names the reasons.
    starts = [(first_contact, ())] + [(t, ("bot_routing",)) for t in bot_times]
    for start, start_reasons in starts:
        for extra in _RESPONSE_RULES:
            counted = {"chat", *extra}
            response = next((m for m in messages if kind(m) in counted and ts_to_ms(m.created_at) >= start), None)
            if response is None or abs(ts_to_ms(response.created_at) - start - drift) > TOLERANCE_MS:
                continue
            reasons = start_reasons + ((kind(response),) if kind(response) != "chat" else ())
            if reasons:
                return reasons
    if row.synced_at is not None and first_contact + drift > ts_to_ms(row.synced_at):
        return ("not_synced",)
    return ()


def classify(metric: str, drift: int | None, row: Ours, raw: RawConversation) -> tuple[str, ...]:
    """Why Drift's `drift` and our figure for `metric` differ (keys of REASONS), read from the
    conversation's raw data; () when nothing we know of explains it."""
    ours = our_value(metric, row)
    if metric == "first_close":
        return _first_close_reasons(drift, ours, row, raw)
    if metric == "time_to_close":
        # Both sides measure from creation: a different duration is a different first close.
        created = _ms(row.created_at)
        if created is None:
            return ()
        return _first_close_reasons(None if drift is None else created + drift,
                                    None if ours is None else created + ours, row, raw)
    if metric == "first_agent_message":
        return _first_agent_message_reasons(drift, ours, row, raw)
    if metric == "time_to_agent_response":
        return _agent_response_reasons(drift, ours, row, raw)
    raise ValueError(f"unknown metric {metric!r}")


def compare(org_id: int | None, drift_rows: dict[int, dict[str, int | None]], ours: dict[int, Ours],
            load_raw: Callable[[list[int]], dict[int, RawConversation]],
            latest_sync_ms: int | None = None) -> Reconciliation:
    """Every conversation Drift reported, metric by metric, against ours; differences are
    classified from the raw rows of just those conversations (`load_raw(ids)`). A conversation
    Drift reports that the warehouse lacks differs wherever Drift has a value: `not_synced` when
    Drift's times are after the org's latest sync began (`latest_sync_ms`), else unexplained."""
    result = Reconciliation(reported=len(drift_rows))
    pending: list[tuple[int, str, int | None, int | None]] = []
    for cid, values in sorted(drift_rows.items()):
        row = ours.get(cid)
        for metric, name in COMPARED.items():
            drift, mine = values.get(name), our_value(metric, row)
            if drift is None and mine is None:
                continue
            tally = result.tallies[metric]
            tally.compared += 1
            if _same(drift, mine):
                tally.matched += 1
            else:
                pending.append((cid, metric, mine, drift))
    raw = load_raw(sorted({cid for cid, *_ in pending if cid in ours})) if pending else {}
    for cid, metric, mine, drift in pending:
        row = ours.get(cid)
        if row is None:
            times = [drift_rows[cid].get(n) for n in ("firstCloseAt", "firstAgentMessageAt")]
            late = latest_sync_ms is not None and any(t is not None and t > latest_sync_ms for t in times)
            reasons: tuple[str, ...] = ("not_synced",) if late else ()
        else:
            reasons = classify(metric, drift, row, raw.get(cid, RawConversation()))
        if reasons:
            result.tallies[metric].explained += 1
        result.differences.append(Difference(org_id, cid, metric, mine, drift, reasons))
    return result


def metadata(result: Reconciliation) -> dict[str, Any]:
    """The check's metadata as plain values: agreement per metric, reasons, the differences."""
    agreement = {
        metric: {"compared": t.compared, "matched": t.matched, "explained": t.explained,
                 "unexplained": t.compared - t.matched - t.explained,
                 "matched_pct": round(100.0 * t.matched / t.compared, 2) if t.compared else None,
                 "agree_or_explained_pct": round(100.0 * t.agreeing_share, 2)}
        for metric, t in result.tallies.items()
    }
    unexplained = result.unexplained
    return {
        "agreement": agreement,
        "reasons": result.reason_counts(),
        "unexplained_ids": sorted({d.conversation_id for d in unexplained})[:LISTED],
        "unexplained": len(unexplained),
        "differences": [
            {"org_id": d.org_id, "conversation_id": d.conversation_id, "metric": d.metric, "ours_ms": d.ours,
             "drift_ms": d.drift, "reasons": list(d.reasons) or ["unexplained"]}
            # Unexplained first: they are what someone has to look at.
            for d in sorted(result.differences, key=lambda d: (bool(d.reasons), d.conversation_id, d.metric))[:LISTED]
        ],
        "reported_conversations": result.reported,
        "ours_not_in_report": result.ours_not_reported,
        "report_calls": result.report_calls,
        "windows": result.windows,
    }


def summary_lines(agreement: dict[str, dict], reasons: dict[str, dict[str, int]]) -> list[str]:
    """The check's agreement as one line per metric, for a terminal (`drift-pipeline sync`):
    `first_close: 2879 of 2879 agree` or `... agree, 247 differ for a known reason
    (agent_opener 127, deleted_message 120), 0 unexplained`."""
    lines = []
    for metric, a in agreement.items():
        line = f"{metric}: {a['matched']} of {a['compared']} agree"
        if a["explained"] or a["unexplained"]:
            known = ", ".join(f"{reason} {count}" for reason, count in
                              sorted(reasons.get(metric, {}).items(), key=lambda item: (-item[1], item[0]))
                              if reason != "unexplained")
            line += f", {a['explained']} differ for a known reason" + (f" ({known})" if known else "")
            line += f", {a['unexplained']} unexplained"
        lines.append(line)
    return lines


# -- the warehouse ----------------------------------------------------------------------------
def latest_sync_windows(conn) -> dict[int, tuple[datetime, datetime, datetime | None]]:
    """{org id: (window_start, window_end, started_at)} of each org's latest successful sync."""
    rows = conn.execute(
        "SELECT org_id, window_start, window_end, started_at FROM raw.exports "
        "WHERE success AND coalesce(kind, 'sync') = 'sync' AND org_id IS NOT NULL "
        "AND window_start IS NOT NULL AND window_end IS NOT NULL "
        "ORDER BY org_id, finished_at DESC NULLS LAST, started_at DESC").fetchall()
    latest: dict[int, tuple[datetime, datetime, datetime | None]] = {}
    for org_id, start, end, started in rows:
        latest.setdefault(org_id, (start, end, started))
    return latest


def load_ours(conn, org_id: int, conversation_ids: list[int]) -> dict[int, Ours]:
    """Our figures for these conversations (those Drift reported in one window)."""
    if not conversation_ids:
        return {}
    rows = conn.execute(
        "SELECT c.conversation_id, f.created_at, c.updated_at, c.synced_at, f.first_contact_message_at, "
        "f.first_agent_message_at, f.first_response_seconds, f.first_response_business_seconds, "
        "f.first_closed_at, f.open_to_close_seconds "
        "FROM raw.conversations c JOIN marts.fct_conversations f "
        "ON f.org_id = c.org_id AND f.conversation_id = c.conversation_id "
        "WHERE c.org_id = ? AND c.conversation_id IN (SELECT unnest(?::BIGINT[]))",
        [org_id, list(conversation_ids)]).fetchall()
    return {r[0]: Ours(*r) for r in rows}


def ours_updated_in(conn, org_id: int, start: datetime, end: datetime) -> set[int]:
    """Our conversations whose stored `updated_at` is in [start, end)."""
    return {r[0] for r in conn.execute(
        "SELECT conversation_id FROM raw.conversations WHERE org_id = ? AND updated_at >= ? AND updated_at < ?",
        [org_id, start, end]).fetchall()}


def load_raw(conn, org_id: int, conversation_ids: list[int]) -> dict[int, RawConversation]:
    """The messages and status events of these conversations (only those that differ)."""
    if not conversation_ids:
        return {}
    messages: dict[int, list[RawMessage]] = {}
    for cid, *fields in conn.execute(
            "SELECT conversation_id, message_id, created_at, message_type, author_type, is_bot, "
            "edited_message_id, edit_type FROM raw.messages WHERE org_id = ? "
            "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org_id, conversation_ids]).fetchall():
        messages.setdefault(cid, []).append(RawMessage(*fields))
    events: dict[int, list[StatusEvent]] = {}
    for cid, *fields in conn.execute(
            "SELECT conversation_id, status, changed_at, source FROM raw.status_events WHERE org_id = ? "
            "AND conversation_id IN (SELECT unnest(?::BIGINT[]))", [org_id, conversation_ids]).fetchall():
        events.setdefault(cid, []).append(StatusEvent(*fields))
    return {cid: RawConversation(tuple(_ordered(messages.get(cid, []))), tuple(events.get(cid, [])))
            for cid in conversation_ids}
