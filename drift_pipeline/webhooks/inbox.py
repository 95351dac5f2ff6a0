"""The webhook inbox: durable, atomic, deduplicated drop of events as files.

Layout (docs/reference.md): `$DRIFT_PIPELINE_HOME/inbox/*.json`, one JSON object per line:
`{"event_id": <sha256 hex>, "received_at": <epoch ms>, "payload": <the event without token>}`.
A file is written under a temporary name (`.tmp-*`, never matching `*.json`), fsynced, then
linked to its final name `<received ms, 13 digits>-<seq>.json` and the directory fsynced, so a
reader never sees a half-written file and names sort oldest first.

`InboxWriter` does group commit: one writer thread takes every event queued while the previous
batch was being fsynced (plus a short linger), writes them as one file with one fsync, then
releases the waiting requests. That is what makes >= 1,000 durable events/s possible.

Deduplication: ids already written are kept in memory and appended to
`state/webhook_seen_ids` (`<id> <received ms>` per line) after their file is durable (flushed
per batch, fsynced at shutdown), and reloaded at start together with the ids in files still
waiting in the inbox. Both are a rolling window (`SeenIds`, `SEEN_IDS_WINDOW_MS`: Drift's retry
period with room), compacted in place, so they stay bounded. The order (inbox first, then the
seen list) means a crash can at worst let one redelivery be written twice, which the apply step
absorbs (it upserts `raw.webhook_events` on `event_id`); it can never lose an event.

Repeats: an event that may recur with the same bytes (`WebhookEvent.repeatable`: a status or
participant event without `changedAt`) is never answered "duplicate". When its id is already
seen it is written again, as an ordinary line with its own `received_at`, and answered
`accepted` with `repeat: true`; the seen list gains no line for it (the id is in it already),
so the list stays as bounded as before. The apply step re-fetches the conversation for it and
adds no row (webhooks/apply.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from drift_pipeline.fsutil import atomic_write_text, fsync_dir
from drift_pipeline.webhooks.events import canonical_json, strip_token
from drift_pipeline.webhooks.events import event_id as compute_event_id

log = logging.getLogger(__name__)

SEEN_IDS_FILENAME = "webhook_seen_ids"
TEMP_PREFIX = ".tmp-"
_NAME_RE = re.compile(r"^(\d{13})-(\d+)\.json$")
_EVENT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# Stale temp files are leftovers of a crashed writer; younger ones may belong to a live one.
_STALE_TEMP_SECONDS = 300

# Process-wide, so the writer thread and `write_events_file` never pick the same name.
_sequence = itertools.count()
_sequence_lock = threading.Lock()


class InvalidInboxFile(ValueError):
    """An inbox file that cannot be applied; the message is a one-line reason to quarantine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InboxUnavailable(RuntimeError):
    """The inbox could not make an event durable (disk full, permissions, writer stopped)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the file format -------------------------------------------------------------------------

def inbox_record(payload: Mapping[str, Any], received_at_ms: int | None = None,
                 event_id: str | None = None) -> dict[str, Any]:
    """The line stored for one event (token removed, id computed when not given)."""
    return {
        "event_id": event_id or compute_event_id(payload),
        "received_at": now_ms() if received_at_ms is None else received_at_ms,
        "payload": strip_token(payload),
    }


def _encode(record: Mapping[str, Any]) -> bytes:
    # ensure_ascii keeps every line free of raw newlines and U+2028-style separators.
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii") + b"\n"


def _encode_canonical(identity: str, received_at_ms: int, canonical: str) -> bytes:
    # Same line as _encode(inbox_record(...)), with the payload already serialized.
    return (f'{{"event_id":{json.dumps(identity)},"received_at":{int(received_at_ms)},'
            f'"payload":{canonical}}}\n').encode("ascii")


def iter_inbox_files(inbox_dir: Path | str) -> list[Path]:
    """Inbox files waiting to be applied, oldest first (by the time in their name).

    Temporary files (`.tmp-*`) and anything not ending in `.json` are never returned. Files
    dropped by hand with another name sort after the receiver's, by modification time.
    """
    inbox_dir = Path(inbox_dir)
    if not inbox_dir.is_dir():
        return []
    named: list[tuple[tuple, Path]] = []
    for path in inbox_dir.iterdir():
        if path.name.startswith(".") or not path.name.endswith(".json") or not path.is_file():
            continue
        match = _NAME_RE.match(path.name)
        if match:
            key = (0, int(match.group(1)), int(match.group(2)), path.name)
        else:
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:  # applied by someone else meanwhile
                continue
            key = (1, mtime, 0, path.name)
        named.append((key, path))
    return [path for _, path in sorted(named)]


def read_inbox_file(path: Path | str) -> list[dict[str, Any]]:
    """The records of one inbox file, in file order.

    Each record is `{"event_id": str, "received_at": int, "payload": dict}`. Checks the
    envelope only; the payload's shape is `events.validate_event`'s job. Raises
    `InvalidInboxFile` with a one-line reason (naming the line) on a malformed file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInboxFile(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InvalidInboxFile(f"{path.name} line {number}: not JSON: {reason}") from None
        if not isinstance(record, dict):
            raise InvalidInboxFile(f"{path.name} line {number}: not a JSON object")
        identity = record.get("event_id")
        if not isinstance(identity, str) or not _EVENT_ID_RE.match(identity):
            raise InvalidInboxFile(
                f"{path.name} line {number}: event_id must be 64 lowercase hex characters")
        received_at = record.get("received_at")
        if not isinstance(received_at, int) or isinstance(received_at, bool):
            raise InvalidInboxFile(
                f"{path.name} line {number}: received_at must be epoch milliseconds")
        if not isinstance(record.get("payload"), dict):
            raise InvalidInboxFile(f"{path.name} line {number}: payload must be a JSON object")
        records.append(record)
    if not records:
        raise InvalidInboxFile(f"{path.name}: holds no events")
    return records


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# --- atomic file writes --------------------------------------------------------------------


def _publish(temp: Path, inbox_dir: Path, received_at_ms: int) -> Path:
    """Give a durable temp file its final name without ever replacing an existing file."""
    while True:
        with _sequence_lock:
            seq = next(_sequence)
        final = inbox_dir / f"{received_at_ms:013d}-{seq:06d}.json"
        try:
            os.link(temp, final)  # unlike rename, link never clobbers a file of another writer
        except FileExistsError:
            continue
        except OSError:
            # Filesystems without hard links: rename, having checked the name is free.
            if final.exists():
                continue
            os.replace(temp, final)
            return final
        os.unlink(temp)
        return final


def _write_file(inbox_dir: Path, lines: list[bytes], received_at_ms: int,
                sync_dir: bool = True) -> Path:
    temp = inbox_dir / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        try:
            _write_all(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)
        final = _publish(temp, inbox_dir, received_at_ms)
    except BaseException:
        try:
            temp.unlink()
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        fsync_dir(inbox_dir)
    return final


def _write_all(fd: int, lines: list[bytes]) -> None:
    view = memoryview(b"".join(lines))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_events_file(inbox_dir: Path | str, events: Iterable[Mapping[str, Any]]) -> Path | None:
    """Write events as one inbox file, atomically and durably; for tests, replay and tools.

    `events` are Drift payloads (their `token` is dropped) or ready records with `event_id`,
    `received_at` and `payload`. No deduplication here: the apply step is idempotent.
    Returns the file written, or None when there was nothing to write.
    """
    inbox_dir = Path(inbox_dir)
    inbox_dir.mkdir(parents=True, exist_ok=True)
    received = now_ms()
    lines = []
    for event in events:
        if {"event_id", "received_at", "payload"} <= set(event):
            record = {"event_id": event["event_id"], "received_at": event["received_at"],
                      "payload": strip_token(event["payload"])}
        else:
            record = inbox_record(event, received)
        lines.append(_encode(record))
    if not lines:
        return None
    return _write_file(inbox_dir, lines, received)


def quarantine_record(quarantine_dir: Path | str, name: str, record: Mapping[str, Any],
                      reason: str) -> Path:
    """Keep one event that cannot be applied as `<name>` (an inbox file of one line, so
    `replay event` reads it) with `<name>.reason` beside it; both written atomically.

    The reason is written first, so every quarantined file has one. The record's payload must
    already be without its token (see `inbox_record`).
    """
    quarantine_dir = Path(quarantine_dir)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / name
    atomic_write_text(quarantine_dir / f"{name}.reason", (reason.strip().splitlines() or ["no reason given"])[0] + "\n")
    atomic_write_text(target, json.dumps(record, separators=(",", ":"), ensure_ascii=True,
                                         allow_nan=False) + "\n")
    return target


def remove_stale_temp_files(inbox_dir: Path, older_than_s: float = _STALE_TEMP_SECONDS) -> int:
    """Delete temp files left by a crashed writer (never applied: they were not durable)."""
    removed = 0
    cutoff = time.time() - older_than_s
    for path in inbox_dir.glob(f"{TEMP_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


# --- seen ids ---------------------------------------------------------------------------------

# How long an accepted id is remembered: Drift redelivers an event it got no 2xx for, for a
# period it does not document; webhook senders commonly retry for up to 24-28 hours. Three days
# covers that with room (a receiver that answered 5xx over a weekend is still deduplicated).
# Past it a redelivery is written again and absorbed by the apply step (`raw.webhook_events`).
SEEN_IDS_WINDOW_MS = 72 * 3600 * 1000
# The file is rewritten with the live ids once it has grown by as many lines as they number
# (so it stays under twice the window's ids), and never for fewer than this many new lines.
_COMPACT_MIN_LINES = 10_000


class SeenIds:
    """The receiver's memory of accepted event ids: a rolling window of `SEEN_IDS_WINDOW_MS`,
    persisted in `state/webhook_seen_ids` (one `<id> <received ms>` per line, appended per
    batch) and compacted in place, so file and memory stay bounded however long it runs.

    Ids of files still waiting in the inbox are kept by every compaction and reloaded at start:
    what is not applied yet stays deduplicated. Only the writer thread calls `persist`,
    `remember` and `maybe_compact`; `__contains__` may come from any thread.
    """

    def __init__(self, state_dir: Path, inbox_dir: Path | None = None, *,
                 window_ms: int = SEEN_IDS_WINDOW_MS, compact_min_lines: int = _COMPACT_MIN_LINES,
                 clock=None) -> None:
        self.path = Path(state_dir) / SEEN_IDS_FILENAME
        self.inbox_dir = inbox_dir
        self.window_ms = window_ms
        self.compact_min_lines = compact_min_lines
        self._clock = clock or now_ms
        self._received: dict[str, int] = {}  # id -> received ms, in arrival order
        self._lock = threading.Lock()  # memory only: file I/O happens outside it
        self._lines_on_disk = 0
        self._handle = None

    def __contains__(self, identity: str) -> bool:
        with self._lock:
            return identity in self._received

    def __len__(self) -> int:
        return len(self._received)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._received)

    @property
    def lines_on_disk(self) -> int:
        return self._lines_on_disk

    def load(self) -> None:
        """Read the file (older files hold bare ids: they count as received now), add the ids
        of files waiting in the inbox, and rewrite the file with what is live."""
        now = self._clock()
        if self.path.exists():
            with self.path.open("rb") as handle:
                for line in handle:
                    parts = line.split()
                    if not parts or len(parts[0]) != 64:
                        continue  # a partial last line of a crashed append
                    try:
                        identity = parts[0].decode("ascii")
                        at = int(parts[1]) if len(parts) > 1 else now
                    except (UnicodeDecodeError, ValueError):
                        continue
                    self._received[identity] = max(at, self._received.get(identity, at))
        # Oldest first, so expiry can stop at the first id still in the window.
        self._received = dict(sorted(self._received.items(), key=lambda item: item[1]))
        self.compact()

    def _waiting_ids(self) -> set[str]:
        if self.inbox_dir is None:
            return set()
        waiting: set[str] = set()
        for file in iter_inbox_files(self.inbox_dir):
            try:
                waiting.update(record["event_id"] for record in read_inbox_file(file))
            except InvalidInboxFile:
                pass  # the apply step quarantines it; its ids are not trusted
        return waiting

    def persist(self, entries: list[tuple[str, int]]) -> None:
        """Append (id, received ms) lines, flushed to the OS (not fsynced: see `_commit`)."""
        if self._handle is None:
            self._handle = open(self.path, "ab")
        self._handle.write("".join(f"{i} {at}\n" for i, at in entries).encode("ascii"))
        self._handle.flush()
        self._lines_on_disk += len(entries)

    def remember(self, entries: list[tuple[str, int]]) -> None:
        """Add to memory and forget what left the window (the oldest come first)."""
        now = self._clock()
        with self._lock:
            for identity, at in entries:
                self._received.pop(identity, None)
                self._received[identity] = at
            self._expire(now)

    def _expire(self, now: int) -> None:
        horizon = now - self.window_ms
        expired = []
        for identity, at in self._received.items():
            if at >= horizon:
                break  # arrival order: the rest are younger (a late straggler waits its turn)
            expired.append(identity)
        for identity in expired:
            del self._received[identity]

    def maybe_compact(self) -> bool:
        """Rewrite the file when it has grown past twice the live ids; True when it did."""
        if self._lines_on_disk - len(self._received) < max(self.compact_min_lines, len(self._received)):
            return False
        self.compact()
        return True

    def compact(self) -> None:
        """Rewrite the file atomically with the ids in the window and those still waiting in the
        inbox (not applied yet)."""
        waiting = self._waiting_ids()
        now = self._clock()
        with self._lock:
            self._expire(now)
            for identity in waiting:
                self._received.setdefault(identity, now)
            entries = list(self._received.items())
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(f"{i} {at}\n" for i, at in entries))
        self._lines_on_disk = len(entries)

    def close(self, *, sync: bool = False) -> None:
        if self._handle is None:
            return
        try:
            self._handle.flush()
            if sync:
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()
            self._handle = None


def load_seen_ids(state_dir: Path, inbox_dir: Path | None = None) -> set[str]:
    """Ids the receiver still deduplicates: the rolling window plus ids in files still waiting
    in the inbox."""
    seen = SeenIds(state_dir, inbox_dir)
    seen.load()
    return seen.ids()


# --- the group-commit writer ------------------------------------------------------------------

@dataclass(frozen=True)
class SubmitResult:
    status: str  # "accepted" or "duplicate"
    event_id: str
    repeat: bool = False  # accepted again: a repeatable event whose id was already seen


class InboxWriter:
    """Durable, deduplicated event sink with group commit (one writer thread).

    `start()` loads the seen ids and starts the thread; `await submit(payload)` returns once
    the event is on disk (or is known to be a duplicate); `close()` drains and stops.
    Thread-based so fsync never blocks the event loop and any loop (or none) can submit.
    """

    def __init__(self, inbox_dir: Path | str, state_dir: Path | str, *,
                 max_batch: int = 1000, linger_s: float = 0.001) -> None:
        self.inbox_dir = Path(inbox_dir)
        self.state_dir = Path(state_dir)
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._seen = SeenIds(self.state_dir, self.inbox_dir)
        # event id (or a repeat's own key) -> [(waiter, status)]
        self._pending: dict[str | tuple, list] = {}
        self._repeat_keys = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.batches_written = 0
        self.events_written = 0
        self.last_error: str | None = None

    # lifecycle

    def start(self) -> None:
        if self.running:
            return
        self.inbox_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.inbox_dir)
        self._seen = SeenIds(self.state_dir, self.inbox_dir)
        self._seen.load()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="webhook-inbox-writer",
                                        daemon=True)
        self._thread.start()
        log.info("webhook inbox writer started: %s (%d ids already seen)",
                 self.inbox_dir, len(self._seen))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._stopping = True
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        try:
            self._seen.close(sync=True)
        except OSError as exc:
            log.error("could not sync webhook seen ids: %s", exc)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def seen_count(self) -> int:
        return len(self._seen)

    def is_writable(self) -> bool:
        return os.access(self.inbox_dir, os.W_OK | os.X_OK) and self.inbox_dir.is_dir()

    # submitting

    def _enqueue(self, payload: Mapping[str, Any], event_id: str | None,
                 received_at_ms: int | None, canonical: str | None, waiter: "_Waiter",
                 repeatable: bool = False) -> None:
        if canonical is None:
            canonical = canonical_json(payload)
        identity = event_id or hashlib.sha256(canonical.encode("ascii")).hexdigest()
        received_at = now_ms() if received_at_ms is None else received_at_ms
        line = _encode_canonical(identity, received_at, canonical)
        with self._lock:
            if self._stopping or self._thread is None:
                waiter.settle(InboxUnavailable("the inbox writer is not running"))
                return
            known = identity in self._seen or identity in self._pending
            if known and repeatable:
                # Maybe a genuine new change with an old change's bytes: written again, under
                # a key of its own so it never shares the original's batch outcome.
                key = ("repeat", next(self._repeat_keys))
                self._pending[key] = [(waiter, "accepted")]
                self._queue.put((key, identity, received_at, line, True))
                return
            if identity in self._seen:
                waiter.settle(SubmitResult("duplicate", identity))
                return
            waiters = self._pending.get(identity)
            if waiters is not None:
                # A redelivery racing the original: it is answered with the original's
                # batch, so a "duplicate" 200 never stands for an event that failed to be
                # written.
                waiters.append((waiter, "duplicate"))
                return
            self._pending[identity] = [(waiter, "accepted")]
            # Queued under the lock, so nothing can be queued after close()'s stop marker.
            self._queue.put((identity, identity, received_at, line, False))

    def submit_nowait(self, payload: Mapping[str, Any], event_id: str | None = None,
                      received_at_ms: int | None = None, canonical: str | None = None, *,
                      repeatable: bool = False) -> concurrent.futures.Future:
        """Queue an event; the future resolves to a `SubmitResult` once durable (or duplicate).

        `event_id` and `canonical` (from `validate_event`) save computing them twice; the
        stored payload is then that canonical JSON. `repeatable` (the event's
        `WebhookEvent.repeatable`) writes an already seen id again instead of answering
        "duplicate" (see the module docstring).
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._enqueue(payload, event_id, received_at_ms, canonical, _Waiter(future, None),
                      repeatable)
        return future

    async def submit(self, payload: Mapping[str, Any], event_id: str | None = None,
                     received_at_ms: int | None = None, canonical: str | None = None, *,
                     repeatable: bool = False) -> SubmitResult:
        """Like `submit_nowait`, awaited: returns once the event is durable (or duplicate)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(payload, event_id, received_at_ms, canonical, _Waiter(future, loop),
                      repeatable)
        return await future

    # the writer thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = self._collect(batch)
            self._commit(batch)
            if stop:
                return

    def _collect(self, batch: list) -> bool:
        """Add what else is queued (waiting up to `linger_s`); True when asked to stop."""
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else \
                    self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:  # always the last item queued (see _enqueue)
                return True
            batch.append(item)
        return False

    def _commit(self, batch: list) -> None:
        keys = [key for key, *_ in batch]
        # A repeat's id is in the seen list already: no second line for it.
        entries = [(identity, received_at) for _, identity, received_at, _, repeat in batch
                   if not repeat]
        error: Exception | None = None
        try:
            _write_file(self.inbox_dir, [line for _, _, _, line, _ in batch], batch[0][2])
        except Exception as exc:  # disk full, permissions...: the requests get a 503
            error = InboxUnavailable(f"could not write the inbox: {type(exc).__name__}: {exc}")
            self.last_error = str(error)
            log.error("webhook inbox write failed for %d events: %s", len(batch), error)
        else:
            self.last_error = None
            try:
                # Flushed to the OS (survives a crash of this process) but not fsynced per
                # batch: the list only serves dedupe, ids of files still in the inbox are
                # reloaded at start, and a redelivery stored twice is absorbed by the apply
                # step. Two fsyncs per batch (file, directory) instead of three keep p99 low.
                if entries:
                    self._seen.persist(entries)
            except Exception as exc:
                # The events are durable in the inbox; only dedupe across a restart suffers.
                log.error("could not persist webhook seen ids: %s: %s", type(exc).__name__, exc)
            self.batches_written += 1
            self.events_written += len(batch)
        with self._lock:
            if error is None:
                self._seen.remember(entries)
            waiters = [self._pending.pop(key) for key in keys]
        _settle_all([(waiter, SubmitResult(status, identity, repeat) if error is None else error)
                     for (_, identity, _, _, repeat), group in zip(batch, waiters)
                     for waiter, status in group])
        if error is None:
            try:
                self._seen.maybe_compact()  # after the requests are answered: off their latency
            except Exception as exc:
                log.error("could not compact webhook seen ids: %s: %s", type(exc).__name__, exc)


class _Waiter:
    """A request waiting for its event: an asyncio future (with its loop) or a plain one."""

    __slots__ = ("future", "loop")

    def __init__(self, future, loop: asyncio.AbstractEventLoop | None) -> None:
        self.future = future
        self.loop = loop

    def settle(self, outcome: "SubmitResult | Exception") -> None:
        """From the submitting thread (duplicate or refused at once)."""
        _set(self.future, outcome)


def _set(future, outcome) -> None:
    if future.done():  # an asyncio future whose request was cancelled (client hung up)
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _set_many(pairs) -> None:
    for future, outcome in pairs:
        _set(future, outcome)


def _settle_all(outcomes: list) -> None:
    """Resolve waiters from the writer thread: one wake-up per event loop per batch, not one
    per event (each wake-up is a write to the loop's self-pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for waiter, outcome in outcomes:
        if waiter.loop is None:
            _set(waiter.future, outcome)
        else:
            by_loop.setdefault(waiter.loop, []).append((waiter.future, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_many, pairs)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass
