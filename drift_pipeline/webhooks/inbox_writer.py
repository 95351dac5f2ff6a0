"""The receiver's inbox writer: durable, deduplicated events with group commit.

`InboxWriter` does group commit: one writer thread takes every event queued while the previous
batch was being fsynced (plus a short linger), writes them as one inbox file
(`inbox_files.write_inbox_file`) with one fsync, then releases the waiting requests. That is
what makes >= 1,000 durable events/s possible. Ids are deduplicated through `SeenIds`
(`seen_ids.py`), remembered only once their file is durable.

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
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from drift_pipeline.webhooks.events import canonical_json
from drift_pipeline.webhooks.inbox_files import (
    encode_canonical_line,
    now_ms,
    remove_stale_temp_files,
    write_inbox_file,
)
from drift_pipeline.webhooks.seen_ids import SeenIds

log = logging.getLogger(__name__)


class InboxUnavailable(RuntimeError):
    """The inbox could not make an event durable (disk full, permissions, writer stopped)."""


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
        line = encode_canonical_line(identity, received_at, canonical)
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
            write_inbox_file(self.inbox_dir, [line for _, _, _, line, _ in batch], batch[0][2])
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
